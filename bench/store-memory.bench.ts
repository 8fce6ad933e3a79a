// Heap and speed of the memory store holding 1,000,000 distinct rate-limit keys.
//   node --import tsx bench/store-memory.bench.ts          (re-runs itself with --expose-gc)
//   BENCH_KEYS=2000000 node --import tsx bench/store-memory.bench.ts
// Keys look like the gateway's: `rl:api:openid:<28-character openid>`. The heap is measured
// after full GCs. Typed arrays' backing stores are counted by V8 as external memory, not heap:
// both are printed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MemoryStore } from '../gateway/store/memory-store.js';
import { rateBudget } from '../gateway/store/sliding-window.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const run = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
  });
  process.exit(run.status ?? 1);
}

const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const measure = (): { heap: number; buffers: number; total: number } => {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers, total: m.heapUsed + m.arrayBuffers };
};
const openid = (i: number): string => `o${i.toString(36).padStart(27, 'x')}`;

// Each key is built per hit, as the gateway does: what stays on the heap is what the store keeps
// (the key strings included).
const key = (i: number): string => `rl:api:openid:${openid(i)}`;
const store = new MemoryStore({ maxKeys: KEYS });
const base = measure();
const budget = rateBudget(100, 60_000);
const rules = [{ key: '', budget }];

let started = performance.now();
for (let i = 0; i < KEYS; i++) {
  rules[0] = { key: key(i), budget };
  await store.hit(rules);
}
const insertMs = performance.now() - started;
const filled = measure();

// Hits on keys that already exist, in a scattered order (no cache-friendly sequence).
const repeat = Math.min(KEYS, 1_000_000);
started = performance.now();
for (let i = 0; i < repeat; i++) {
  rules[0] = { key: key((i * 7919) % KEYS), budget };
  await store.hit(rules);
}
const repeatMs = performance.now() - started;

const exampleKey = key(KEYS - 1);
console.log(`memory store, ${KEYS.toLocaleString('en')} distinct keys like ${exampleKey} (${exampleKey.length} chars), window 60 s`);
console.log(`  empty store: heap ${mb(base.heap)} + array buffers ${mb(base.buffers)}`);
console.log(`  filled:      heap ${mb(filled.heap)} + array buffers ${mb(filled.buffers)}`);
const held = filled.total - base.total;
console.log(`  held by the store: ${mb(held)} = ${(held / KEYS).toFixed(1)} bytes per key, key string included`);
console.log(`    of which JS heap (Map, key strings, slot->key array): ${mb(filled.heap - base.heap)}`);
console.log(`    of which typed arrays (counters, heads, windows):     ${mb(filled.buffers - base.buffers)}`);
console.log(`  new keys:      ${Math.round(KEYS / (insertMs / 1000)).toLocaleString('en')} hits/s`);
console.log(`  existing keys: ${Math.round(repeat / (repeatMs / 1000)).toLocaleString('en')} hits/s`);
await store.close();
