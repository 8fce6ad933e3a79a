// How long a policy with many routes takes to validate and to become a route table.
//   node --import tsx bench/routes-load.bench.ts           (10,000 routes)
//   BENCH_ROUTES=50000 node --import tsx bench/routes-load.bench.ts
// The routes look like a large real policy: nested prefixes, exact paths, some host-bound and
// method-bound, over a few hundred top-level areas.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicyText } from '../gateway/policy/load.js';
import { RouteTable } from '../gateway/proxy/route-table.js';

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
  let t = performance.now();
  const { config } = await parsePolicyText(text, join(dir, 'policy.yaml'), { env: {} });
  const validated = performance.now() - t;
  t = performance.now();
  const table = new RouteTable(config.routes.map((r) => ({ config: r, target: r.name })));
  const built = performance.now() - t;
  const sample = table.lookup('GET', 'h2.example.com', '/area2/svc2/x');
  console.log(`${config.routes.length} routes: validate and build config ${validated.toFixed(0)} ms, route table ${built.toFixed(1)} ms`);
  if (sample.kind !== 'found') throw new Error(`lookup failed: ${sample.kind}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
