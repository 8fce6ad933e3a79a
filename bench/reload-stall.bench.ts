// The longest stretch a reload keeps the event loop from answering anything, with validation on
// the main thread (what `wxgw validate` and a start do) and in a worker (what a reload does),
// each followed by the snapshot build that yields between chunks of routes.
//   node --import tsx bench/reload-stall.bench.ts              (1,000 and 10,000 routes)
//   BENCH_ROUTES=50000 node --import tsx bench/reload-stall.bench.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadPolicy, type LoadedPolicy } from '../gateway/policy/load.js';
import { loadPolicyOffThread } from '../gateway/policy/load-off-thread.js';
import { createLogger } from '../gateway/observability/logger.js';
import { UpstreamPools } from '../gateway/proxy/forwarder.js';
import { buildSnapshot } from '../gateway/snapshot.js';
import { MemoryStore } from '../gateway/store/memory-store.js';
import { writePolicy } from './route-policy.js';

const COUNTS = process.env.BENCH_ROUTES ? [Number(process.env.BENCH_ROUTES)] : [1_000, 10_000];

const ways: Record<string, (file: string) => Promise<LoadedPolicy>> = {
  'validate on the main thread': (file) => loadPolicy(file, { env: {} }),
  'validate in a worker': (file) =>
    loadPolicyOffThread(file, {
      env: {},
      logger: {
        warn: ({ err }) => {
          throw err;
        },
      },
    }),
};

const dir = mkdtempSync(join(tmpdir(), 'wxgw-reload-stall-'));
const pools = new UpstreamPools();
const deps = { store: new MemoryStore(), pools, logger: createLogger({ level: 'silent' }) };
try {
  for (const count of COUNTS) {
    const file = writePolicy(dir, count);
    for (const [way, load] of Object.entries(ways)) {
      // 1 ms resolution: the histogram's max is then the longest stall plus about 1 ms.
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      const t = performance.now();
      const { config } = await load(file);
      const snapshot = await buildSnapshot(config, [], deps);
      const ms = performance.now() - t;
      delay.disable();
      if (snapshot.routes.lookup('GET', 'h2.example.com', '/area2/svc2/x').kind !== 'found') throw new Error('lookup failed');
      const stall = (n: number): string => `${(n / 1e6).toFixed(1)} ms`;
      console.log(`${count} routes, ${way}: reload ${ms.toFixed(0)} ms, longest event-loop stall ${stall(delay.max)}, p99 ${stall(delay.percentile(99))}`);
    }
  }
} finally {
  await pools.close();
  rmSync(dir, { recursive: true, force: true });
}
