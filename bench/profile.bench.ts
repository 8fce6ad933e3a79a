// Where a wxgw request's CPU time goes: runs one gateway under `node --cpu-prof` with the routing-
// only or the full policy (allowlist, CORS, per-ip limit, mask), drives it with wrk, and prints
// self time by module and by function from the profile V8 wrote, so a change can be aimed at what
// costs most and its effect read in the same terms.
//   node --import tsx bench/profile.bench.ts            (the full policy, 10 s)
//   BENCH_PROFILE=routing BENCH_SECONDS=20 node --import tsx bench/profile.bench.ts
//   BENCH_PROFILE=mask,limit ...        (some of allow, cors, limit, mask)
// Profiles the compiled CLI: run `npm run build` after a change. The .cpuprofile stays in the printed directory for a flame graph (Chrome DevTools, speedscope).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, cpuSeconds, probe, target } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WHICH = process.env.BENCH_PROFILE ?? 'full';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame lives, in the terms a reader of this repo uses: a repo path, a package, or node's own. */
function place(url: string): string {
  if (url === '') return '(native / V8)';
  const path = url.replace(/^file:\/\//, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return `npm:${pkg[1]}`;
  if (path.startsWith('node:')) return path;
  return path.startsWith(root) ? relative(root, path) : path;
}

function top(map: Map<string, number>, total: number, n: number): string[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `| ${k} | ${((100 * v) / total).toFixed(1)}% |`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-profile-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], { env: { ...process.env, HOST: '127.0.0.1' }, stdio: 'ignore' });
  const port = await freePort();
  const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
  cidrs.splice(500, 0, '127.0.0.1/32');
  // Each feature of the full policy alone, so the cost of one shows apart from the others.
  const features: Record<string, string[]> = {
    allow: [`  allow: [${cidrs.join(', ')}]`],
    cors: ['  cors: { origins: ["https://app.example.com", "https://*.shop.example.com"], credentials: true, methods: [GET, POST] }'],
    limit: ['  rate_limit: { key: ip, limit: 1000000, window: 60s }'],
    mask: ['  mask: wx-user'],
  };
  const chosen = WHICH === 'full' ? Object.keys(features) : WHICH === 'routing' ? [] : WHICH.split(',');
  for (const f of chosen) if (!features[f]) throw new Error(`BENCH_PROFILE: unknown feature ${f} (full, routing, or some of ${Object.keys(features).join(', ')})`);
  const policy = join(dir, 'gateway.yaml');
  writeFileSync(
    policy,
    benchPolicy({
      port,
      chain,
      // One process: the profile is of the process that serves, not of a primary handing it connections.
      server: ['  workers: 1'],
      upstream: `http://127.0.0.1:${backendPort}`,
      sections: chosen.includes('mask') ? ['mask_profiles:', '  wx-user:', '    drop: [session_key, unionid]', '    partial: { phone: { keep_start: 3, keep_end: 4 }, idcard: { keep_start: 6, keep_end: 4 } }'] : [],
      tail: ['defaults:', ...(chosen.includes('allow') ? [] : ['  allow: any']), ...chosen.flatMap((f) => features[f]!)],
    }),
  );
  // The compiled CLI, as ops run it (`npm run build` first): no TypeScript loader in the profile.
  const gateway = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, join(root, 'bin/wxgw.js'), 'start', '--config', policy], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const url = `https://127.0.0.1:${port}/api/member`;
    const ca = readFileSync(chain.root);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (gateway.exitCode !== null) throw new Error(`wxgw exited with ${gateway.exitCode}`);
      try {
        await probe(target('wxgw', url, undefined, { origin: 'https://m.shop.example.com' }), ca);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error('wxgw did not answer within 20 s', { cause: err });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const cpuBefore = cpuSeconds(gateway.pid);
    const run = spawnSync('wrk', ['-t1', '-c50', `-d${SECONDS}s`, '-H', 'origin: https://m.shop.example.com', url], { encoding: 'utf8' });
    if (run.status !== 0 || /Non-2xx/.test(run.stdout)) throw new Error(`wrk: ${run.stdout}${run.stderr}`);
    const cpu = cpuSeconds(gateway.pid)! - cpuBefore!;
    const requests = Number(/(\d+) requests in/.exec(run.stdout)?.[1]);
    process.stdout.write(`${requests} requests, ${Math.round((cpu * 1e6) / requests)} µs of gateway CPU per request (profiler on)\n`);
  } finally {
    gateway.kill('SIGINT');
    await new Promise((r) => gateway.once('exit', r));
    backend.kill();
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}: the gateway did not exit cleanly`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)' || frame.functionName === '(program)') continue;
    total += us;
    const where = place(frame.url);
    byPlace.set(where, (byPlace.get(where) ?? 0) + us);
    const name = `${frame.functionName || '(anonymous)'} ${where}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  }
  process.stdout.write(
    [
      `profile of wxgw (${WHICH}) under wrk -t1 -c50 for ${SECONDS} s: ${join(dir, file)}`,
      `busy samples ${(total / 1e6).toFixed(2)} s (idle and (program) left out)`,
      '',
      '| module | self |',
      '|---|---:|',
      ...top(byPlace, total, 25),
      '',
      '| function | self |',
      '|---|---:|',
      ...top(byFunction, total, 30),
      '',
    ].join('\n'),
  );
}

await main();
