// How long a policy with many routes takes to validate and to become a route table.
//   node --import tsx bench/routes-load.bench.ts           (10,000 routes)
//   BENCH_ROUTES=50000 node --import tsx bench/routes-load.bench.ts
// The routes look like a large real policy: nested prefixes, exact paths, some host-bound and
// method-bound, over a few hundred top-level areas.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicyText } from '../gateway/policy/load.js';
import { createLogger } from '../gateway/observability/logger.js';
import { UpstreamPools } from '../gateway/proxy/forwarder.js';
import { buildSnapshot } from '../gateway/snapshot.js';
import { MemoryStore } from '../gateway/store/memory-store.js';

const ROUTES = Number(process.env.BENCH_ROUTES ?? 10_000);

function policyText(count: number): string {
  const lines = [
    'version: 1',
    'server:',
    '  https: { listen: "127.0.0.1:8443" }',
    'tls:',
    '  certificates:',
    '    - { cert: cert.pem, key: key.pem }',
    'upstreams:',
    '  legacy: { url: "http://127.0.0.1:9000" }',
    'defaults: { allow: any }',
    'routes:',
  ];
  for (let i = 0; i < count; i++) {
    const area = `/area${i % 300}/`;
    const kind = i % 4;
    const match =
      kind === 0
        ? `{ path_prefix: ${area}svc${i}/ }`
        : kind === 1
          ? `{ path: ${area}svc${i}/item, methods: [GET, POST] }`
          : kind === 2
            ? `{ path_prefix: ${area}svc${i}/, host: h${i % 7}.example.com }`
            : `{ path: ${area}svc${i}/login }`;
    lines.push(`  - name: r${i}`, `    match: ${match}`, '    upstream: legacy');
  }
  return lines.join('\n') + '\n';
}

const dir = mkdtempSync(join(tmpdir(), 'wxgw-routes-bench-'));
try {
  mkdirSync(dir, { recursive: true });
  for (const f of ['cert.pem', 'key.pem']) writeFileSync(join(dir, f), 'not read by validation\n');
  const text = policyText(ROUTES);
  // CPU time beside wall time: on a shared machine the wall clock mostly measures the neighbours.
  const since = (wall: number, cpu: NodeJS.CpuUsage): string => {
    const used = process.cpuUsage(cpu);
    return `${(performance.now() - wall).toFixed(0)} ms (cpu ${((used.user + used.system) / 1000).toFixed(0)} ms)`;
  };
  let t = performance.now();
  let c = process.cpuUsage();
  const { config } = await parsePolicyText(text, join(dir, 'policy.yaml'), { env: {} });
  const validated = since(t, c);
  t = performance.now();
  c = process.cpuUsage();
  const pools = new UpstreamPools();
  const snapshot = await buildSnapshot(config, [], { store: new MemoryStore(), pools, logger: createLogger({ level: 'silent' }) });
  const built = since(t, c);
  const sample = snapshot.routes.lookup('GET', 'h2.example.com', '/AREA2/svc2/x');
  console.log(`${config.routes.length} routes: validate ${validated}, snapshot with route table ${built}`);
  await pools.close();
  if (sample.kind !== 'found' || sample.route.target.name !== 'r2') throw new Error(`lookup failed: ${sample.kind}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
