// How an upstream group picks targets and keeps their health, on an injected clock: round robin
// and least busy, a bounded wait for a slot, passive ejection with a doubling cool-down, and
// every target down. No connection is opened here (test/integration/upstream-targets.test.ts
// does that).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError } from '../../gateway/errors.js';
import { UpstreamGroup, type Target } from '../../gateway/proxy/upstream-group.js';
import type { UpstreamTarget } from '../../gateway/snapshot.js';
import type { UpstreamConfig } from '../../gateway/types/policy.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'upstreams.app' };

function group(over: Partial<UpstreamConfig> = {}, clock = { now: 0 }) {
  const targets = (over.targets ?? [new URL('http://10.0.0.1:9000'), new URL('http://10.0.0.2:9000'), new URL('http://10.0.0.3:9000')]);
  const config: UpstreamConfig = {
    name: 'app',
    url: targets[0]!,
    timeout: 30_000,
    targets,
    balance: 'round_robin',
    preserve_host: false,
    connections: 2,
    connect_timeout: 5_000,
    queue_timeout: 20,
    eject: { failures: 3, cooldown: 10_000, max_cooldown: 35_000 },
    pos,
    ...over,
  };
  const upstream: UpstreamTarget = { name: 'app', origin: config.url.origin, basePath: '', config, tls: undefined, key: 'k' };
  const ejected: { target: string; ms: number }[] = [];
  const g = new UpstreamGroup(upstream, { ejected: (_u, target, ms) => ejected.push({ target, ms }) }, () => clock.now);
  return { g, clock, ejected };
}

/** acquire() as a promise of the target's host:port, or the reason it was refused. */
function take(g: UpstreamGroup, exclude?: Target, gone = () => false): Promise<{ target: Target; host: string } | string> {
  return new Promise((resolve) =>
    g.acquire(exclude, gone, (got) => resolve(got instanceof GatewayError ? got.reason : { target: got, host: new URL(got.origin).host })),
  );
}
const host = async (p: ReturnType<typeof take>): Promise<string> => {
  const got = await p;
  assert.ok(typeof got !== 'string', `refused: ${String(got)}`);
  return got.host.replace(':9000', '');
};

const refused = new Error('connect ECONNREFUSED');

test('round robin takes the targets in turn, skipping one that is down', async () => {
  const { g } = group();
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) {
    const got = await take(g);
    assert.ok(typeof got !== 'string');
    seen.push(got.host);
    g.release(got.target);
  }
  assert.deepEqual(seen, ['10.0.0.1:9000', '10.0.0.2:9000', '10.0.0.3:9000', '10.0.0.1:9000']);
  for (let i = 0; i < 3; i++) g.connectFailed(g.targets[1]!, refused);
  const after: string[] = [];
  for (let i = 0; i < 3; i++) {
    const got = await take(g);
    assert.ok(typeof got !== 'string');
    after.push(got.host);
    g.release(got.target);
  }
  assert.ok(!after.includes('10.0.0.2:9000'), after.join(' '));
  await g.close();
});

test('least_busy takes the target with the fewest requests in flight, in turn on a tie', async () => {
  const { g } = group({ balance: 'least_busy' });
  const a = await take(g);
  const b = await take(g);
  assert.deepEqual([await host(Promise.resolve(a)), await host(Promise.resolve(b))], ['10.0.0.1', '10.0.0.2']);
  // 1 and 2 each carry one: 3 is idle.
  assert.equal(await host(take(g)), '10.0.0.3');
  assert.ok(typeof a !== 'string' && typeof b !== 'string');
  g.release(a.target);
  // Now 1 carries none.
  assert.equal(await host(take(g)), '10.0.0.1');
  await g.close();
});

test('a request finding every slot taken waits, gets the first one freed, or upstream_busy after queue_timeout', async () => {
  const { g } = group({ targets: [new URL('http://10.0.0.1:9000')], connections: 1, queue_timeout: 60_000 });
  const first = await take(g);
  assert.ok(typeof first !== 'string');
  const waiting = take(g);
  let gone = false;
  const left = take(g, undefined, () => gone);
  gone = true;
  g.release(first.target);
  // The next waiter gets the slot; the client that left is told it is gone once it is its turn.
  assert.equal(await host(waiting), '10.0.0.1');
  assert.equal(await left, 'client_closed');
  await g.close();

  const short = group({ targets: [new URL('http://10.0.0.1:9000')], connections: 1, queue_timeout: 5 }).g;
  await take(short);
  assert.equal(await take(short), 'upstream_busy');
  await short.close();
});

test('connection failures in a row eject a target for a cool-down that doubles up to max_cooldown', async () => {
  const { g, clock, ejected } = group();
  const t = g.targets[0]!;
  g.connectFailed(t, refused);
  g.connectFailed(t, refused);
  assert.equal(t.up(clock.now), true, 'two failures of three');
  g.connectFailed(t, refused);
  assert.equal(t.up(clock.now), false);
  assert.deepEqual(ejected, [{ target: 'http://10.0.0.1:9000', ms: 10_000 }]);
  // Connections that were being opened when it was ejected fail too; they change nothing.
  for (let i = 0; i < 5; i++) g.connectFailed(t, refused);
  assert.equal(ejected.length, 1);
  clock.now = 9_999;
  assert.equal(t.up(clock.now), false);
  clock.now = 10_000;
  assert.equal(t.up(clock.now), true, 'back after the cool-down');
  // Back from an ejection, one failure is enough, and the cool-down doubles, then stops at max.
  g.connectFailed(t, refused);
  clock.now += 20_000;
  g.connectFailed(t, refused);
  clock.now += 35_000;
  g.connectFailed(t, refused);
  assert.deepEqual(ejected.map((e) => e.ms), [10_000, 20_000, 35_000, 35_000]);
  // A connection that works ends the series: the next ejection is the first again.
  clock.now += 35_000;
  g.connected(t);
  for (let i = 0; i < 3; i++) g.connectFailed(t, refused);
  assert.deepEqual(ejected.map((e) => e.ms), [10_000, 20_000, 35_000, 35_000, 10_000]);
  await g.close();
});

test('cooldown equal to max_cooldown is a fixed cool-down', async () => {
  const { g, clock, ejected } = group({ eject: { failures: 1, cooldown: 5_000, max_cooldown: 5_000 } });
  const t = g.targets[0]!;
  for (let i = 0; i < 3; i++) {
    g.connectFailed(t, refused);
    clock.now += 5_000;
  }
  assert.deepEqual(ejected.map((e) => e.ms), [5_000, 5_000, 5_000]);
  await g.close();
});

test('with every target down a request gets upstream_down at once, and a retry with no other target too', async () => {
  const { g } = group({ targets: [new URL('http://10.0.0.1:9000'), new URL('http://10.0.0.2:9000')], eject: { failures: 1, cooldown: 1_000, max_cooldown: 1_000 } });
  const [a, b] = g.targets as [Target, Target];
  g.connectFailed(a, refused);
  assert.equal(await take(g, b), 'upstream_down', 'the only other target is down');
  g.connectFailed(b, refused);
  assert.equal(await take(g), 'upstream_down');
  await g.close();
});

test('waiters behind targets that all go down are told at once', async () => {
  const { g } = group({ targets: [new URL('http://10.0.0.1:9000'), new URL('http://10.0.0.2:9000')], connections: 1, queue_timeout: 60_000, eject: { failures: 1, cooldown: 1_000, max_cooldown: 1_000 } });
  const held = [await take(g), await take(g)];
  const waiting = take(g);
  for (const h of held) {
    assert.ok(typeof h !== 'string');
    g.connectFailed(h.target, refused);
  }
  assert.equal(await waiting, 'upstream_down');
  await g.close();
});

test('a lone target is never ejected by connection failures: each request tries it again', async () => {
  const { g, ejected } = group({ targets: [new URL('http://10.0.0.1:9000')] });
  for (let i = 0; i < 10; i++) g.connectFailed(g.targets[0]!, refused);
  assert.deepEqual(ejected, []);
  assert.equal(await host(take(g)), '10.0.0.1');
  await g.close();
});
