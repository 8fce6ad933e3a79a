// HTTP/2 against HTTP/1.1 through wxgw on the 1 KB route (GET /api/feed, routing only), in one
// run: HTTP/1.1 clients of a listener with `server.http2: false` (the HTTPS server as before) and
// of one with h2 on (what allowHTTP1 costs them), and h2 clients of the latter, on one connection
// carrying every stream and on several. autocannon speaks HTTP/1.1 only; the h2 load is a small
// loop on Node's http2 client keeping a fixed number of streams in flight, and h2load (Debian's
// nghttp2-client) runs too when it is installed. Interleaved rounds, medians, as proxy.bench.ts.
//   node --import tsx bench/h2.bench.ts
//   BENCH_ROUNDS=1 BENCH_SECONDS=2 node --import tsx bench/h2.bench.ts     (a quick sanity run)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type ClientHttp2Session } from 'node:http2';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, connections, cpuSeconds, load, median, rounds, seconds, startTs, target, waitReady } from './lib.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const PATH = '/api/feed';

interface Row {
  name: string;
  rps: number[];
  p50: number[];
  p99: number[];
  cpuUs: number[];
}

/**
 * `sessions` h2 connections, each keeping `streams` requests in flight for `ms`: requests per
 * second and latency percentiles in ms. Fails on any answer but 200.
 */
async function h2Load(port: number, ca: Buffer, sessions: number, streams: number, ms: number): Promise<{ rps: number; p50: number; p99: number; total: number }> {
  const open: ClientHttp2Session[] = await Promise.all(
    Array.from(
      { length: sessions },
      () =>
        new Promise<ClientHttp2Session>((resolve, reject) => {
          const s = connect(`https://127.0.0.1:${port}`, { ca, servername: 'localhost' });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  const latencies: number[] = [];
  const end = performance.now() + ms;
  const one = (session: ClientHttp2Session): Promise<void> =>
    new Promise((resolve, reject) => {
      const start = performance.now();
      const req = session.request({ ':path': PATH, ':authority': 'localhost' });
      let status = 0;
      req.once('response', (h) => (status = Number(h[':status'])));
      req.on('data', () => {});
      req.once('end', () => {
        if (status !== 200) reject(new Error(`h2: status ${status}`));
        latencies.push(performance.now() - start);
        resolve();
      });
      req.once('error', reject);
    });
  const worker = async (session: ClientHttp2Session): Promise<void> => {
    while (performance.now() < end) await one(session);
  };
  const t0 = performance.now();
  await Promise.all(open.flatMap((s) => Array.from({ length: streams }, () => worker(s))));
  const elapsed = (performance.now() - t0) / 1000;
  for (const s of open) s.close();
  latencies.sort((a, b) => a - b);
  const at = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]! * 100) / 100;
  return { rps: latencies.length / elapsed, p50: at(0.5), p99: at(0.99), total: latencies.length };
}

/** h2load's requests per second, or undefined when it is not installed. */
function h2loadRps(port: number, sessions: number, streams: number, secs: number): number | undefined {
  const run = spawnSync('h2load', ['-c', String(sessions), '-m', String(streams), '-D', String(secs), '--warm-up-time=1', `https://127.0.0.1:${port}${PATH}`], { encoding: 'utf8' });
  if (run.error) return undefined;
  if (!/succeeded, 0 failed/.test(run.stdout) && !/\b0 failed\b/.test(run.stdout)) throw new Error(`h2load failed:\n${run.stdout}${run.stderr}`);
  const m = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(run.stdout);
  return m ? Number(m[1]) : undefined;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-h2-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);
  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], { env: { ...process.env, HOST: '127.0.0.1' }, stdio: 'ignore' });
  const upstream = `http://127.0.0.1:${backendPort}`;
  await new Promise((r) => setTimeout(r, 300));

  const [h1Port, h2Port] = [await freePort(), await freePort()];
  const h1Policy = join(dir, 'h1.yaml');
  const h2Policy = join(dir, 'h2.yaml');
  writeFileSync(h1Policy, benchPolicy({ port: h1Port, chain, upstream, server: ['  http2: false'], tail: ['defaults: { allow: any }'] }));
  writeFileSync(h2Policy, benchPolicy({ port: h2Port, chain, upstream, tail: ['defaults: { allow: any }'] }));
  const children: ChildProcess[] = [backend];
  try {
    const h1Server = startTs('targets/wxgw.ts', [h1Policy, join(dir, 'h1.log')]);
    const h2Server = startTs('targets/wxgw.ts', [h2Policy, join(dir, 'h2.log')]);
    children.push(h1Server, h2Server);
    await Promise.all([waitReady(h1Server, 'wxgw http2: false'), waitReady(h2Server, 'wxgw http2: true')]);
    const h1Only = target('HTTP/1.1, server.http2: false', `https://127.0.0.1:${h1Port}${PATH}`, h1Server.pid);
    const h1OnH2 = target('HTTP/1.1, server.http2: true', `https://127.0.0.1:${h2Port}${PATH}`, h2Server.pid);
    // autocannon's connections each hold one request; the h2 rows hold as many streams in all.
    const perSession = Math.max(1, Math.floor(connections / 4));
    const h2Rows: { name: string; sessions: number; streams: number }[] = [
      { name: `HTTP/2, 1 connection x ${connections} streams`, sessions: 1, streams: connections },
      { name: `HTTP/2, 4 connections x ${perSession} streams`, sessions: 4, streams: perSession },
    ];
    const rows = new Map<string, Row>();
    const row = (name: string): Row => {
      let r = rows.get(name);
      if (!r) rows.set(name, (r = { name, rps: [], p50: [], p99: [], cpuUs: [] }));
      return r;
    };
    // Warm-up: JIT, TLS sessions, upstream pools.
    await load(h1Only, 1);
    await load(h1OnH2, 1);
    await h2Load(h2Port, ca, 1, connections, 1000);
    for (let round = 0; round < rounds; round++) {
      for (const t of [h1Only, h1OnH2]) {
        const cpu = cpuSeconds(t.pid);
        const r = await load(t, seconds);
        const used = cpuSeconds(t.pid);
        const out = row(t.name);
        out.rps.push(r.requests.average);
        out.p50.push(r.latency.p50);
        out.p99.push(r.latency.p99);
        if (cpu !== undefined && used !== undefined) out.cpuUs.push(((used - cpu) * 1e6) / r.requests.total);
      }
      for (const h of h2Rows) {
        const cpu = cpuSeconds(h2Server.pid);
        const r = await h2Load(h2Port, ca, h.sessions, h.streams, seconds * 1000);
        const used = cpuSeconds(h2Server.pid);
        const out = row(h.name);
        out.rps.push(r.rps);
        out.p50.push(r.p50);
        out.p99.push(r.p99);
        if (cpu !== undefined && used !== undefined) out.cpuUs.push(((used - cpu) * 1e6) / r.total);
      }
      const viaH2load = h2loadRps(h2Port, 4, perSession, seconds);
      if (viaH2load !== undefined) row(`h2load -c 4 -m ${perSession}`).rps.push(viaH2load);
    }
    const base = median(row(h1Only.name).rps);
    const lines = [
      `wxgw HTTP/2 vs HTTP/1.1: GET ${PATH} (1 KB JSON) through wxgw (routing only), TLS 1.3, ` +
        `${connections} requests in flight, median of ${rounds} rounds of ${seconds} s, node ${process.version}`,
      '',
      '| client | req/s | p50 ms | p99 ms | server CPU µs/req (saturated) | vs HTTP/1.1, http2: false |',
      '|---|---:|---:|---:|---:|---:|',
      ...[...rows.values()].map((r) => {
        const rps = median(r.rps);
        const cell = (v: number[]): string => (v.length > 0 ? String(Math.round(median(v) * 100) / 100) : '-');
        return `| ${r.name} | ${Math.round(rps)} | ${cell(r.p50)} | ${cell(r.p99)} | ${r.cpuUs.length > 0 ? Math.round(median(r.cpuUs)) : '-'} | ${(rps / base).toFixed(2)}x |`;
      }),
      '',
      "The Node h2 loop runs in this process, as autocannon does; h2load (when installed) is native and shows what the gateway serves with a cheaper client.",
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) c.kill();
  }
}

await main();
