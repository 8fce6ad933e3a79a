// Store.hitNow: the memory store's synchronous hit. It must decide and count exactly as hit()
// does, the timing wrapper must keep timing it, a worker's IPC store must not pretend to have it,
// and the guard chain must decide a memory-store limit without a promise, refusals included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGuardChain, type GuardInput, type RouteGuards, type Verdict } from '../../gateway/guards/chain.js';
import { EVERYONE } from '../../gateway/guards/ip-allow.js';
import { compileRateLimits } from '../../gateway/guards/rate-limit.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { ipcStore, type IpcPort } from '../../gateway/store/ipc-store.js';
import type { RateRule, Store } from '../../gateway/store/store.js';
import { timedStore } from '../../gateway/store/timed-store.js';
import { prng, rule } from '../helpers/store-contract.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'routes[0]' };

/** `inner` as a store that must wait for its answers (as Redis does): no hitNow. */
function asyncOnly(inner: Store): Store {
  return { kind: 'redis', connected: true, hit: (r) => inner.hit(r), claim: (k, t, h) => inner.claim(k, t, h), release: (k, h) => inner.release(k, h), put: (k, v, t) => inner.put(k, v, t), get: (k) => inner.get(k), close: () => inner.close() };
}

test('hitNow decides and counts exactly as hit, call for call (random rules, one key twice, a zero limit)', async () => {
  let clock = 5_000_000;
  const now = (): number => clock;
  const a = new MemoryStore({ now });
  const b = new MemoryStore({ now });
  const random = prng(17);
  const keys = ['k1', 'k2', 'k3'];
  for (let i = 0; i < 2000; i++) {
    clock += Math.floor(random() * 400);
    const rules: RateRule[] = [];
    const n = 1 + Math.floor(random() * 3);
    for (let r = 0; r < n; r++) rules.push(rule(keys[Math.floor(random() * keys.length)]!, Math.floor(random() * 6), 1000 + 1000 * Math.floor(random() * 3)));
    assert.deepEqual(a.hitNow(rules), await b.hit(rules), `call ${i}`);
  }
  await a.close();
  await b.close();
});

test('the timed store passes hitNow through and times it as a hit; without it on the store, it has none', async () => {
  const seen: string[] = [];
  const memory = new MemoryStore();
  const timed = timedStore(memory, (operation, seconds) => {
    assert.ok(seconds >= 0);
    seen.push(operation);
  });
  const [result] = timed.hitNow!([rule('k', 2, 1000)]);
  assert.equal(result!.allowed, true);
  assert.equal(result!.remaining, 1);
  assert.deepEqual(seen, ['hit']);
  assert.equal(timedStore(asyncOnly(memory), () => undefined).hitNow, undefined);
  await memory.close();
});

test("a worker's IPC store has no hitNow (its answer crosses processes)", () => {
  const port: IpcPort = { send: () => true, on: () => port, off: () => port, connected: true };
  assert.equal(ipcStore(port).hitNow, undefined);
});

function limitChain(store: Store, limit: number) {
  const guards: RouteGuards = {
    ipAllow: EVERYONE,
    cors: undefined,
    callback: undefined,
    identity: undefined,
    identityRequired: false,
    rateLimit: compileRateLimits('api', [{ key: 'ip', limit, window: 60_000, scope: 'route', ipv6_prefix: 64, pos }]),
    store,
    storeFailOpen: false,
  };
  return compileGuardChain(guards);
}

const input: GuardInput = { method: 'GET', url: '/api/x', headers: {}, client: '203.0.113.7', preflight: false, readBody: () => Promise.reject(new Error('no body')) };

test('a memory-store limit is decided without a promise: admitted with RateLimit headers, then refused', async () => {
  const memory = new MemoryStore({ now: () => 1_000_000 });
  const chain = limitChain(timedStore(memory, () => undefined), 2);
  const verdicts: Verdict[] = [];
  for (let i = 0; i < 3; i++) {
    const v = chain.run(input);
    assert.ok(!(v instanceof Promise), `request ${i} was decided on the spot`);
    verdicts.push(v);
  }
  assert.equal(verdicts[0]!.kind, 'continue');
  assert.deepEqual(verdicts[1]!.kind === 'continue' && verdicts[1]!.answerAdded, { 'ratelimit-limit': '2', 'ratelimit-remaining': '0', 'ratelimit-reset': '62' });
  assert.equal(verdicts[2]!.kind, 'refuse');
  assert.equal(verdicts[2]!.kind === 'refuse' && verdicts[2]!.reason, 'rate_limited');
  assert.equal(verdicts[2]!.kind === 'refuse' && verdicts[2]!.headers?.['retry-after'], '62');

  // The same limit on a store that only answers asynchronously gives the same verdicts, by promise.
  const other = new MemoryStore({ now: () => 1_000_000 });
  const slow = limitChain(asyncOnly(other), 2);
  for (let i = 0; i < 3; i++) {
    const v = slow.run(input);
    assert.ok(v instanceof Promise);
    assert.deepEqual(await v, verdicts[i]);
  }
  await memory.close();
  await other.close();
});
