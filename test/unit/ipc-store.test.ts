// The memory store as a cluster's workers see it (store/ipc-store.ts): every call crosses a real
// IPC channel to a MemoryStore in another process, as the primary holds it. Decisions stay the
// store's (exact under concurrency), its errors keep their class (on_unavailable reads
// StoreUnavailableError), a method is forwarded by its name, and a lost primary is an
// unavailable store, not a hang. The cost of a hit over IPC is printed beside the in-process one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { ipcStore, type IpcPort } from '../../gateway/store/ipc-store.js';
import { rateBudget } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError, type RateRule, type Store } from '../../gateway/store/store.js';

const SERVER = fileURLToPath(new URL('../helpers/ipc-store-server.ts', import.meta.url));

async function serve(maxKeys = 1_000_000): Promise<{ child: ChildProcess; store: Store }> {
  // As cluster.setupPrimary({ serialization: 'advanced' }) sets it for the workers.
  const child = fork(SERVER, [String(maxKeys)], { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const store = ipcStore(child as unknown as IpcPort);
  await once(child, 'message');
  return { child, store };
}

const rule = (key: string, limit: number, windowMs = 3_600_000): RateRule => ({ key, budget: rateBudget(limit, windowMs) });

let primary: { child: ChildProcess; store: Store };
before(async () => {
  primary = await serve(4);
});
after(() => {
  primary.child.kill();
});

test('hit decides in the other process: of 300 concurrent hits against a limit of 100, exactly 100 are admitted', async () => {
  const results = await Promise.all(Array.from({ length: 300 }, () => primary.store.hit([rule('rl:exact', 100)])));
  assert.equal(results.filter(([r]) => r!.allowed).length, 100);
  const [last] = await primary.store.hit([rule('rl:exact', 100)]);
  assert.deepEqual({ allowed: last!.allowed, limit: last!.limit, remaining: last!.remaining }, { allowed: false, limit: 100, remaining: 0 });
  assert.ok(last!.retryAfterMs > 0);
});

test('claims, releases and values cross as they are', async () => {
  const { store } = primary;
  assert.equal(await store.claim('nonce:a', 60_000, 'me'), true);
  assert.equal(await store.claim('nonce:a', 60_000, 'you'), false);
  await store.release('nonce:a', 'you');
  assert.equal(await store.claim('nonce:a', 60_000, 'you'), false, 'only the holder releases');
  await store.release('nonce:a', 'me');
  assert.equal(await store.claim('nonce:a', 60_000, 'you'), true);
  await store.put('session:x', 'value', 60_000);
  assert.equal(await store.get('session:x'), 'value');
  assert.equal(await store.get('session:none'), undefined);
  assert.equal(store.kind, 'memory');
  assert.equal(store.connected, true);
});

test("the store's errors keep their class: a full store is StoreUnavailableError, a bad ttl a RangeError", async () => {
  const { store } = primary;
  // The helper's store holds 4 values: 'nonce:a' and 'session:x' from the test before, or others.
  const claims = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => store.claim(`full:${i}`, 60_000)));
  const refused = claims.filter((c): c is PromiseRejectedResult => c.status === 'rejected');
  assert.ok(refused.length > 0, 'some claim found the store full');
  for (const r of refused) {
    assert.ok(r.reason instanceof StoreUnavailableError, String(r.reason));
    assert.equal((r.reason as StoreUnavailableError).reason, 'store_unavailable');
    assert.match((r.reason as Error).message, /memory store holds 4 values/);
  }
  await assert.rejects(store.claim('bad-ttl', -1), (err: unknown) => err instanceof RangeError && /positive number of ms/.test(err.message));
});

test('a method is forwarded by its name: one the primary does not have is refused by name, not dropped', async () => {
  const unknown = (primary.store as unknown as { expire(key: string): Promise<void> }).expire('k');
  await assert.rejects(unknown, /the store has no method expire/);
  // Awaiting the store itself does not turn into a call.
  assert.equal(await Promise.resolve(primary.store), primary.store);
});

test('a primary that is gone makes the store unavailable: calls in flight and later ones reject', async () => {
  const { child, store } = await serve();
  const inFlight = Array.from({ length: 50 }, (_, i) => store.hit([rule(`rl:gone:${i}`, 5)]).then(() => 'answered', (err: unknown) => err));
  child.kill('SIGKILL');
  await once(child, 'exit');
  for (const outcome of await Promise.all(inFlight)) assert.ok(outcome === 'answered' || outcome instanceof StoreUnavailableError, String(outcome));
  await assert.rejects(store.hit([rule('rl:after', 5)]), StoreUnavailableError);
  assert.equal(store.connected, false);
});

test('the cost of a hit: over IPC against in-process (printed, not asserted)', async (t) => {
  const local = new MemoryStore();
  const remote = await serve();
  const n = 2_000;
  const time = async (store: Store): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await store.hit([rule(`rl:cost:${i % 100}`, 1_000_000)]);
    return ((performance.now() - t0) * 1000) / n;
  };
  await time(remote.store);
  const ipc = await time(remote.store);
  const inProcess = await time(local);
  await local.close();
  // 64 in flight at a time, as many requests across workers would: what the primary sustains.
  const t0 = performance.now();
  for (let i = 0; i < n; i += 64) await Promise.all(Array.from({ length: 64 }, (_, j) => remote.store.hit([rule(`rl:cost:${(i + j) % 100}`, 1_000_000)])));
  const concurrent = ((performance.now() - t0) * 1000) / n;
  remote.child.kill();
  const line = `sequential hit: ${ipc.toFixed(1)} µs over IPC, ${inProcess.toFixed(1)} µs in process; 64 in flight: ${concurrent.toFixed(1)} µs a hit over IPC (${Math.round(1e6 / concurrent)} hits/s)`;
  t.diagnostic(line);
  console.log(`ipc-store: ${line}`);
});
