// A streamed export through wxgw, masked and unmasked, in the same run: the sample backend's
// `GET /api/export?mb=N` (a JSON array of user records, chunked) through one gateway that masks
// it with the wx-user profile and one that passes it on, both from the compiled CLI. Prints MB/s as
// one client receives it, the gateway's CPU seconds and its RSS before, at its peak (VmHWM) and
// after each download, and the same for a client that reads at a fixed slow pace, which shows
// whether the masker holds the upstream back or buffers the body.
//   npm run build && node --import tsx bench/export.bench.ts
//   BENCH_EXPORT_MB=200 BENCH_ROUNDS=5 ...       BENCH_SLOW_MBPS=20 (the slow reader's pace, 0: none)
//   BENCH_BASELINE=../wxgw-previous ...          the same two gateways from that checkout's build, interleaved
//   BENCH_CPU_PROF=1 ...                         every gateway runs under --cpu-prof (directory printed)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, cpuSeconds, median, probe, rounds, target } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const MB = Number(process.env.BENCH_EXPORT_MB ?? 50);
const SLOW = Number(process.env.BENCH_SLOW_MBPS ?? 20);
const BASELINE = process.env.BENCH_BASELINE;
const PROF = process.env.BENCH_CPU_PROF === '1';

const PROFILE = [
  'mask_profiles:',
  '  wx-user:',
  '    drop: [session_key, unionid]',
  '    partial: { phone: { keep_start: 3, keep_end: 4 }, idcard: { keep_start: 6, keep_end: 4 } }',
];

/** kB of a /proc/<pid>/status field (VmRSS, VmHWM). */
function status(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

interface Gw {
  name: string;
  url: string;
  child: ChildProcess;
}

async function download(gw: Gw, ca: Buffer, pace: number): Promise<{ mbps: number; bytes: number; cpu: number; rssBefore: number; peak: number; rssAfter: number }> {
  const pid = gw.child.pid!;
  const u = new URL(gw.url);
  const client = new Client(u.origin, { connect: { ca, servername: 'localhost' }, bodyTimeout: 300_000 });
  resetPeak(pid);
  const rssBefore = status(pid, 'VmRSS');
  const cpu0 = cpuSeconds(pid)!;
  try {
    const start = process.hrtime.bigint();
    const res = await client.request({ path: u.pathname + u.search, method: 'GET' });
    if (res.statusCode !== 200) throw new Error(`${gw.url}: status ${res.statusCode}`);
    let bytes = 0;
    for await (const chunk of res.body) {
      bytes += (chunk as Buffer).length;
      if (pace > 0) {
        // Sleep until the pace allows the bytes read so far.
        const due = Number(start) / 1e6 + (bytes / (pace * 1024 * 1024)) * 1000;
        const wait = due - Number(process.hrtime.bigint()) / 1e6;
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
    }
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    return { mbps: bytes / 1024 / 1024 / s, bytes, cpu: cpuSeconds(pid)! - cpu0, rssBefore, peak: status(pid, 'VmHWM'), rssAfter: status(pid, 'VmRSS') };
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-export-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);
  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], { env: { ...process.env, HOST: '127.0.0.1' }, stdio: 'ignore' });
  const children: ChildProcess[] = [backend];
  const gws: Gw[] = [];
  try {
    const trees: [string, string][] = [['', root], ...(BASELINE ? ([['baseline ', BASELINE]] as [string, string][]) : [])];
    for (const [label, tree] of trees) {
      for (const masked of [false, true]) {
        const port = await freePort();
        const file = join(dir, `gw-${gws.length}.yaml`);
        writeFileSync(
          file,
          benchPolicy({
            port,
            chain,
            upstream: `http://127.0.0.1:${backendPort}`,
            sections: masked ? PROFILE : [],
            tail: ['defaults:', '  allow: any', ...(masked ? ['  mask: wx-user'] : [])],
          }),
        );
        const args = [...(PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, `prof-${gws.length}`)}`] : []), join(tree, 'bin/wxgw.js'), 'start', '--config', file];
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: tree });
        children.push(child);
        gws.push({ name: `${label}${masked ? 'masked' : 'unmasked'}`, url: `https://127.0.0.1:${port}/api/export?mb=${MB}`, child });
      }
    }
    for (const gw of gws) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await probe(target(gw.name, gw.url.replace(/\/api\/export.*/, '/api/member'), undefined), ca);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`${gw.name} did not answer within 20 s`, { cause: err });
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    // Before any export: what the first download adds (buffers, heap growth) shows against it.
    const atStart = new Map(gws.map((g) => [g.name, status(g.child.pid!, 'VmRSS')]));
    const fast = new Map<string, Awaited<ReturnType<typeof download>>[]>(gws.map((g) => [g.name, []]));
    for (let round = 0; round < rounds; round++) for (const gw of gws) fast.get(gw.name)!.push(await download(gw, ca, 0));
    const lines = [
      `${MB} MB export, ${rounds} interleaved rounds, one client reading as fast as it can (MB/s as the client receives it; medians; RSS in MB of the gateway process, at start before any download):`,
      '',
    ];
    lines.push('| gateway | MB/s | CPU s per download | RSS at start | RSS before | peak RSS | RSS after | bytes out |', '|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const gw of gws) {
      const r = fast.get(gw.name)!;
      const m = (f: (x: (typeof r)[number]) => number) => median(r.map(f));
      lines.push(`| ${gw.name} | ${m((x) => x.mbps).toFixed(0)} | ${m((x) => x.cpu).toFixed(2)} | ${(atStart.get(gw.name)! / 1024).toFixed(0)} | ${(m((x) => x.rssBefore) / 1024).toFixed(0)} | ${(m((x) => x.peak) / 1024).toFixed(0)} | ${(m((x) => x.rssAfter) / 1024).toFixed(0)} | ${r[0]!.bytes} |`);
    }
    if (SLOW > 0) {
      lines.push('', `the same, one download each by a client reading at ${SLOW} MB/s:`, '', '| gateway | MB/s | RSS before | peak RSS | RSS after |', '|---|---:|---:|---:|---:|');
      for (const gw of gws.filter((g) => g.name.endsWith('masked') && !g.name.endsWith('unmasked'))) {
        const r = await download(gw, ca, SLOW);
        lines.push(`| ${gw.name} | ${r.mbps.toFixed(0)} | ${(r.rssBefore / 1024).toFixed(0)} | ${(r.peak / 1024).toFixed(0)} | ${(r.rssAfter / 1024).toFixed(0)} |`);
      }
    }
    if (PROF) lines.push('', `profiles (written when the gateways exit): ${dir}/prof-*`);
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) c.kill('SIGINT');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  }
}

await main();
