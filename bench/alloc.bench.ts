// Bytes the gateway allocates per request, by allocation site: V8's sampling heap profiler in the
// gateway process (targets/alloc-sampler.mjs), counting objects the GC already collected. Unlike
// req/s this does not move when the machine is busy, so it compares two builds on a loaded box.
//   node --import tsx bench/alloc.bench.ts
//   BENCH_BASELINE=../wxgw-previous node --import tsx bench/alloc.bench.ts   (also that checkout, and the sites that differ)
//   BENCH_REQUESTS=20000 BENCH_TOP=25 ...
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, connections, waitReady } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const TOP = Number(process.env.BENCH_TOP ?? 20);
const BASELINE = process.env.BENCH_BASELINE;
const PATH = '/api/member';

type Sites = Map<string, number>;

/** What targets/wxgw.ts does, on a checkout's dist/ (built by `npm ci`). */
function distTarget(tree: string): string {
  const dist = (p: string): string => JSON.stringify(pathToFileURL(join(tree, 'dist/gateway', p)).href);
  return [
    `const { startGateway } = await import(${dist('main.js')});`,
    `const { bufferedDestination, createLogger } = await import(${dist('observability/logger.js')});`,
    'const [config, logFile] = process.argv.slice(2);',
    'await startGateway({ config, logger: createLogger({ destination: bufferedDestination(logFile) }) });',
    "process.send('ready');",
    '',
  ].join('\n');
}

function ask(child: ChildProcess, msg: string): Promise<unknown> {
  return new Promise((resolve) => {
    child.once('message', resolve);
    child.send(msg);
  });
}

async function run(url: string, amount?: number): Promise<void> {
  const r = await autocannon({ url, connections, pipelining: 1, ...(amount ? { amount } : { duration: 3 }) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx and ${r.errors} errors`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-alloc-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], {
    env: { ...process.env, HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  const upstream = `http://127.0.0.1:${backendPort}`;
  const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
  cidrs.splice(500, 0, '127.0.0.1/32');
  const profile = ['mask_profiles:', '  wx-user:', '    drop: [session_key, unionid]', '    partial: { phone: { keep_start: 3, keep_end: 4 } }'];
  const variants: [string, string[], string[]][] = [
    ['routing only', [], ['defaults:', '  allow: any']],
    ['full policy', profile, ['defaults:', `  allow: [${cidrs.join(', ')}]`, '  cors: { origins: ["https://app.example.com"], credentials: true, methods: [GET] }', '  rate_limit: { key: ip, limit: 1000000, window: 10s }', '  mask: wx-user']],
  ];
  const trees: [string, string | undefined][] = [['this checkout', undefined], ...(BASELINE ? [['baseline', BASELINE] as [string, string]] : [])];
  const sampler = join(here, 'targets/alloc-sampler.mjs');
  const results = new Map<string, { perRequest: number; sites: Sites }>();
  try {
    for (const [variant, sections, tail] of variants) {
      for (const [treeName, tree] of trees) {
        const port = await freePort();
        const file = join(dir, `${variant}-${treeName}.yaml`.replaceAll(' ', '-'));
        writeFileSync(file, benchPolicy({ port, chain, upstream, sections, tail }));
        // The compiled build, as bin/wxgw.js runs it: sites get their real lines.
        const script = join(dir, `target-${treeName.replaceAll(' ', '-')}.mjs`);
        writeFileSync(script, distTarget(tree ?? root));
        const child = fork(script, [file, join(dir, 'wxgw.log')], {
          execArgv: ['--enable-source-maps', '--import', sampler],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          cwd: tree ?? root,
        });
        try {
          await waitReady(child, `${variant} (${treeName})`);
          const url = `https://127.0.0.1:${port}${PATH}`;
          await run(url); // warm-up: JIT and pools settled before sampling
          await ask(child, 'alloc-start');
          await run(url, REQUESTS);
          const { sites } = (await ask(child, 'alloc-stop')) as { sites: [string, number][] };
          const map: Sites = new Map(sites);
          let total = 0;
          for (const v of map.values()) total += v;
          results.set(`${variant}|${treeName}`, { perRequest: total / REQUESTS, sites: map });
        } finally {
          child.kill();
        }
      }
    }
  } finally {
    backend.kill();
  }

  const lines = [`wxgw allocation per request: GET ${PATH} (1 KB JSON), HTTPS keep-alive, ${connections} connections, ${REQUESTS} sampled requests, node ${process.version}`, ''];
  for (const [variant] of variants) {
    for (const [treeName] of trees) {
      const r = results.get(`${variant}|${treeName}`)!;
      lines.push(`${variant}, ${treeName}: ${(r.perRequest / 1024).toFixed(2)} KiB per request`);
    }
    const now = results.get(`${variant}|this checkout`)!;
    const was = BASELINE ? results.get(`${variant}|baseline`) : undefined;
    // Against a baseline, sites are compared by function and file: lines move between builds.
    const key = (sites: Sites): Sites => {
      if (!was) return sites;
      const out: Sites = new Map();
      for (const [site, bytes] of sites) {
        const k = site.replace(/:\d+$/, '');
        out.set(k, (out.get(k) ?? 0) + bytes);
      }
      return out;
    };
    const a0 = key(now.sites);
    const b0 = was ? key(was.sites) : new Map<string, number>();
    const names = new Set([...a0.keys(), ...b0.keys()]);
    const rows = [...names].map((site) => {
      const a = (a0.get(site) ?? 0) / REQUESTS;
      const b = (b0.get(site) ?? 0) / REQUESTS;
      return { site, a, b, d: a - b };
    });
    rows.sort((x, y) => (was ? Math.abs(y.d) - Math.abs(x.d) : y.a - x.a));
    lines.push(was ? `  sites that differ most (bytes per request: now, baseline, difference):` : '  top sites (bytes per request):');
    for (const r of rows.slice(0, TOP)) {
      lines.push(was ? `  ${r.a.toFixed(0).padStart(6)} ${r.b.toFixed(0).padStart(6)} ${(r.d >= 0 ? '+' : '') + r.d.toFixed(0)}  ${r.site}` : `  ${r.a.toFixed(0).padStart(6)}  ${r.site}`);
    }
    lines.push('');
  }
  process.stdout.write(lines.join('\n'));
}

await main();
