// How long a policy with many routes takes to validate and to become a route table.
//   node --import tsx bench/routes-load.bench.ts           (10,000 routes)
//   BENCH_ROUTES=50000 node --import tsx bench/routes-load.bench.ts
// The routes look like a large real policy (route-policy.ts). Validation is mostly the YAML parse,
// shown on its own line.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicyText } from '../gateway/policy/load.js';
import { readYaml } from '../gateway/policy/yaml-source.js';
import { createLogger } from '../gateway/observability/logger.js';
import { UpstreamPools } from '../gateway/proxy/forwarder.js';
import { buildSnapshot } from '../gateway/snapshot.js';
import { MemoryStore } from '../gateway/store/memory-store.js';
import { writePolicy } from './route-policy.js';

const ROUTES = Number(process.env.BENCH_ROUTES ?? 10_000);

const dir = mkdtempSync(join(tmpdir(), 'wxgw-routes-bench-'));
try {
  const file = writePolicy(dir, ROUTES);
  const text = readFileSync(file, 'utf8');
  // CPU time beside wall time: on a shared machine the wall clock mostly measures the neighbours.
  const since = (wall: number, cpu: NodeJS.CpuUsage): string => {
    const used = process.cpuUsage(cpu);
    return `${(performance.now() - wall).toFixed(0)} ms (cpu ${((used.user + used.system) / 1000).toFixed(0)} ms)`;
  };
  let t = performance.now();
  let c = process.cpuUsage();
  const { config } = await parsePolicyText(text, file, { env: {} });
  const validated = since(t, c);
  t = performance.now();
  c = process.cpuUsage();
  const pools = new UpstreamPools();
  const snapshot = await buildSnapshot(config, [], { store: new MemoryStore(), pools, logger: createLogger({ level: 'silent' }) });
  const built = since(t, c);
  // After the full validation, so both run with the same warm code.
  t = performance.now();
  c = process.cpuUsage();
  readYaml(text, file);
  const yaml = since(t, c);
  const sample = snapshot.routes.lookup('GET', 'h2.example.com', '/AREA2/svc2/x');
  console.log(`${config.routes.length} routes: validate ${validated} (the YAML parse alone: ${yaml}), snapshot with route table ${built}`);
  await pools.close();
  if (sample.kind !== 'found' || sample.route.target.name !== 'r2') throw new Error(`lookup failed: ${sample.kind}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
