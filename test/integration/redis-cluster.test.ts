// The store on a real Redis Cluster: 3 masters with a replica each, on free ports. The shared
// store contract against it; every key in one slot, a request's rules decided key by key with
// a refused request's counts taken back; redirections (a planned failover's MOVED, a migrating
// slot's ASK) followed with every count kept; and a gateway under load whose master is SIGKILLed:
// the replica takes over, the gateway answers store_unavailable (on_unavailable: deny) in the
// window and comes back by itself, and the limit holds within the bound docs/operations.md states.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { rateBudget } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError, type RateRule } from '../../gateway/store/store.js';
import { TOPOLOGY_PASSWORD, redisCli, startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { eventually } from '../helpers/wait.js';
import { storeContract } from '../helpers/store-contract.js';
import { startFailoverGateway, type FailoverGateway } from '../helpers/store-failover.js';

const logger = pino({ level: 'silent' });
let cluster: TestCluster;
const started = startCluster({ nodeTimeoutMs: 1000 }).then((c) => (cluster = c));
const stores: RedisStore[] = [];

const nodes = (): { host: string; port: number }[] =>
  cluster.seeds.map((s) => {
    const [host, port] = s.split(':') as [string, string];
    return { host, port: Number(port) };
  });

async function open(prefix: string, commandTimeoutMs = 2000): Promise<RedisStore> {
  await started;
  const store = new RedisStore({ cluster: { nodes: nodes(), password: TOPOLOGY_PASSWORD }, keyPrefix: prefix, commandTimeoutMs, logger });
  stores.push(store);
  assert.equal(await store.connect(5000), true);
  return store;
}

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await (await started).stop();
});

storeContract(
  'redis cluster',
  async () => ({
    open: (prefix) => open(prefix),
    advance: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    realClock: true,
  }),
  async () => undefined,
);

const rule = (key: string, limit: number): RateRule => ({ key, budget: rateBudget(limit, 60_000) });

/** The master holding `key`, and the count it holds for a rate-limit key. */
async function counted(key: string): Promise<number> {
  const port = await cluster.masterOf(key);
  const fields = (await redisCli(port, '--raw', 'HGETALL', key)).split('\n').filter((l) => l !== '');
  let sum = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] !== 's') sum += Number(fields[i + 1]);
  return sum;
}

describe('redis cluster store', () => {
  before(() => started);

  test("a request's rules live on different masters; each is one slot, and a refused request's counts are taken back", async () => {
    const store = await open('c-rules:');
    // Keys chosen until the two rules' slots are served by different masters.
    let tight = '';
    let loose = '';
    for (let i = 0; ; i++) {
      tight = `rl:route:ip:${randomBytes(4).toString('hex')}`;
      loose = `rl:global:ip:${randomBytes(4).toString('hex')}`;
      if ((await cluster.masterOf(`c-rules:{${tight}}`)) !== (await cluster.masterOf(`c-rules:{${loose}}`))) break;
      assert.ok(i < 50, 'no two keys on different masters');
    }
    assert.equal((await store.hit([rule(tight, 1), rule(loose, 3)])).every((r) => r.allowed), true);
    for (let i = 0; i < 3; i++) {
      const results = await store.hit([rule(tight, 1), rule(loose, 3)]);
      assert.deepEqual(results.map((r) => r.allowed), [false, true]);
      // The loose rule reports what it still admits once the refused request is taken back.
      assert.equal(results[1]!.remaining, 2);
    }
    await store.settled();
    assert.equal(await counted(`c-rules:{${loose}}`), 1, 'the refused requests were taken back on the other master');
    assert.equal(await counted(`c-rules:{${tight}}`), 1);
  });

  test("one rule's script fails: the rules on other slots that counted it take it back (unless the request went through)", async () => {
    const store = await open('c-broken:');
    const good = `rl:good:${randomBytes(4).toString('hex')}`;
    const broken = `rl:broken:${randomBytes(4).toString('hex')}`;
    // Not a hash: its script fails (WRONGTYPE) while the other rule's script, elsewhere, admits.
    await redisCli(await cluster.masterOf(`c-broken:{${broken}}`), 'SET', `c-broken:{${broken}}`, 'not a hash');
    await assert.rejects(store.hit([rule(good, 5), rule(broken, 5)]), StoreUnavailableError);
    await store.settled();
    assert.equal(await counted(`c-broken:{${good}}`), 0);
    await assert.rejects(store.hit([rule(good, 5), rule(broken, 5)], { admitsUnanswered: true }), StoreUnavailableError);
    await store.settled();
    assert.equal(await counted(`c-broken:{${good}}`), 1);
  });

  test('a planned failover under load: the client follows MOVED to the new master, and the limit stays exact', async () => {
    const store = await open('c-moved:');
    const key = `rl:moved:${randomBytes(4).toString('hex')}`;
    const r = rule(key, 200);
    const old = await cluster.masterOf(`c-moved:{${key}}`);
    const outcomes: (boolean | Error)[] = [];
    let stop = false;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!stop) outcomes.push(await store.hit([r]).then(([res]) => res!.allowed, (err: Error) => err));
      }),
    );
    let moved: number;
    try {
      await eventually(async () => (outcomes.length >= 50 ? true : undefined), 'load before the failover');
      moved = await cluster.handOver(old);
      const at = outcomes.length;
      await eventually(async () => (outcomes.length >= at + 50 && outcomes.slice(at).some((o) => o === false) ? true : undefined), 'load after the failover');
    } finally {
      stop = true;
      await load;
    }
    assert.notEqual(moved, old);
    assert.equal(await cluster.masterOf(`c-moved:{${key}}`), moved);
    // The old master, now a replica, answered the store's next commands with MOVED, which it followed.
    assert.match(await redisCli(old, '--raw', 'INFO', 'errorstats'), /errorstat_MOVED:count=[1-9]/);
    // A planned failover loses no write: every admission counted on the old master is on the new one.
    const failed = outcomes.filter((o) => o instanceof Error);
    assert.ok(failed.every((e) => e instanceof StoreUnavailableError), String(failed[0]));
    // Any that gave up meanwhile (past command_timeout) were taken back when their answer came.
    await store.settled();
    assert.equal(outcomes.filter((o) => o === true).length, 200);
    assert.equal(await counted(`c-moved:{${key}}`), 200);
  });

  test('the slot of a key migrating to another master: the store follows ASK, then MOVED, and every count carries over', async () => {
    const store = await open('c-ask:');
    const key = `rl:ask:${randomBytes(4).toString('hex')}`;
    const full = `c-ask:{${key}}`;
    const r = rule(key, 10);
    const remaining = async (): Promise<number> => (await store.hit([r]))[0]!.remaining;
    assert.equal(await remaining(), 9);
    const source = await cluster.masterOf(full);
    const target = (await cluster.masterPorts()).find((p) => p !== source)!;
    const slot = await redisCli(source, '--raw', 'CLUSTER', 'KEYSLOT', full);
    const id = async (port: number): Promise<string> => redisCli(port, '--raw', 'CLUSTER', 'MYID');
    const [sourceId, targetId] = [await id(source), await id(target)];
    assert.equal(await redisCli(target, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId), 'OK');
    assert.equal(await redisCli(source, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId), 'OK');
    assert.equal(await remaining(), 8, 'the key is still on the source: answered there');
    assert.equal(await redisCli(source, 'MIGRATE', '127.0.0.1', String(target), '', '0', '5000', 'AUTH', TOPOLOGY_PASSWORD, 'KEYS', full), 'OK');
    // The source no longer has the key: it answers ASK, and the store asks the target.
    assert.equal(await remaining(), 7);
    assert.equal(await remaining(), 6);
    assert.match(await redisCli(source, '--raw', 'INFO', 'errorstats'), /errorstat_ASK:count=[1-9]/);
    for (const port of await cluster.masterPorts()) assert.equal(await redisCli(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', targetId), 'OK');
    // The slot is the target's now: the source answers MOVED, and the store follows it.
    assert.equal(await remaining(), 5);
    assert.equal(await cluster.masterOf(full), target);
    for (let left = 4; left >= 0; left--) assert.equal(await remaining(), left);
    assert.equal((await store.hit([r]))[0]!.allowed, false);
    assert.equal(await counted(full), 10);
  });

  test('a master SIGKILLed mid-load: its replica takes over, the gateway answers store_unavailable meanwhile, then works again by itself within the documented bound', async (t) => {
    const LIMIT = 150;
    const gw: FailoverGateway = await startFailoverGateway(
      [
        '  kind: redis',
        '  cluster:',
        `    nodes: [${cluster.seeds.map((s) => `"${s}"`).join(', ')}]`,
        '    password: ${REDIS_PASSWORD}',
        '  key_prefix: "c-gw:"',
        '  command_timeout: 300ms',
        '  on_unavailable: deny',
      ].join('\n'),
      LIMIT,
      { REDIS_PASSWORD: TOPOLOGY_PASSWORD },
    );
    try {
      let killed = 0;
      const result = await gw.run({
        path: '/api/failover',
        before: 60,
        parallel: 8,
        kill: async () => {
          // The master that holds the client's counter, found by its key.
          const key = (await Promise.all(cluster.alivePorts().map((p) => redisCli(p, '--raw', 'KEYS', 'c-gw:*')))).flatMap((k) => k.split('\n')).find((k) => k !== '');
          assert.ok(key !== undefined, 'the gateway wrote its counter');
          killed = await cluster.masterOf(key);
          await cluster.kill(killed);
        },
        failedOver: () => cluster.waitForFailover(killed),
        enough: (afterFailover) => afterFailover.some((a) => a.status === 429),
      });
      for (const a of result.answers) {
        assert.ok(a.status === 200 || (a.status === 429 && a.reason === 'rate_limited') || (a.status === 503 && a.reason === 'store_unavailable'), `${a.status} ${a.reason}`);
      }
      assert.equal(result.count(200, 'before'), 60, JSON.stringify(result.answers.filter((a) => a.phase === 'before' && a.status !== 200)));
      assert.ok(result.count(503, 'during') > 0, 'requests to the dead master in the window were refused as store_unavailable');
      assert.ok(result.count(200, 'after') + result.count(429, 'after') > 0, 'the gateway answers from the new master without a restart');
      const admitted = result.count(200);
      // docs/operations.md: what the dead master had not yet replicated is lost, at most one
      // window's worth per key (the limit); usually the last few milliseconds of writes.
      t.diagnostic(`store_unavailable window ${result.windowMs} ms; admitted ${admitted} of limit ${LIMIT}: ${Math.max(0, admitted - LIMIT)} over, lost with the dead master`);
      assert.ok(admitted <= 2 * LIMIT, `admitted ${admitted}, beyond the documented bound of ${2 * LIMIT}`);
      assert.ok(result.count(429, 'after') > 0, 'the limit holds again after the failover');
      assert.equal(gw.gateway.gw.snapshot.store.kind, 'redis');
      assert.ok(!gw.gateway.logText().includes(TOPOLOGY_PASSWORD), 'the password was logged');
      assert.ok(gw.gateway.logs.some((l) => l.msg === 'redis store connected' && l.redis === `cluster ${cluster.seeds.join(',')}`));
    } finally {
      await gw.close();
    }
  });
});
