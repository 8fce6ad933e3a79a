// Throughput and latency of wxgw over HTTPS keep-alive (TLS 1.3), routing only and with a
// 1,000-CIDR allowlist plus CORS on the route, side by side in one run with: direct HTTP to the backend, a plain Fastify + @fastify/http-proxy server, and a
// bare node:https + undici.Pool forwarder (the ceiling for one Node process).
// Every server runs in its own process; the load generator runs in this one.
// Targets are measured in interleaved rounds and the median is reported, so that a noisy moment
// on a shared machine does not land on one target only. Latency is also measured on a single
// connection, where it shows per-request cost rather than queueing, and the server process's own
// CPU time per request is measured at a fixed rate below saturation: on two cores shared by load
// generator, backend and proxy it is the steadier measure of what each proxy costs.
//   npm run bench                      (defaults: 3 rounds of 6 s per target, 16 connections)
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=32 npm run bench
// The table's ratios need the fastify and bare rows, so every target always runs.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Client } from 'undici';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 6);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const fixedRate = Number(process.env.BENCH_RATE ?? 1500);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);
const PATH = '/api/feed';
const GUARDED = 'wxgw (1,000-CIDR allowlist + CORS)';

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  /** Microseconds on one connection, one request at a time: the cost of a request without queueing. */
  solo50: number;
  solo99: number;
  /** CPU time the server process spent per request at a fixed rate below saturation, in µs. */
  cpuUs: number | undefined;
  rssMb: number | undefined;
}

interface Target {
  name: string;
  url: string;
  /** Sent with every request, e.g. an allowed Origin for the CORS target. */
  headers?: Record<string, string>;
  pid: number | undefined;
  runs: autocannon.Result[];
  solo: number[][];
  cpuPerRequest: number[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before it was ready`)));
  });
}

/** User plus system CPU seconds of a process so far (clock ticks are 1/100 s on Linux). */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return kb ? Math.round(Number(kb) / 1024) : undefined;
}

async function load(target: Target, duration: number, overallRate?: number): Promise<autocannon.Result> {
  const r = await autocannon({ url: target.url, headers: target.headers, connections, pipelining: 1, duration, ...(overallRate ? { overallRate } : {}) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${target.name}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  return r;
}

/** Sequential requests on one keep-alive connection, timed one by one in microseconds. */
async function soloLatency(target: Target, ca: Buffer, count: number): Promise<number[]> {
  const url = new URL(target.url);
  const client = new Client(url.origin, { connect: { ca, servername: 'localhost' } });
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      const res = await client.request({ path: url.pathname, method: 'GET', headers: target.headers });
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`${target.name}: status ${res.statusCode}`);
      times.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  } finally {
    await client.close();
  }
  return times.sort((a, b) => a - b);
}

/** One request's Access-Control-Allow-Origin (the request must also succeed). */
async function soloProbe(target: Target, ca: Buffer): Promise<unknown> {
  const url = new URL(target.url);
  const client = new Client(url.origin, { connect: { ca, servername: 'localhost' } });
  try {
    const res = await client.request({ path: url.pathname, method: 'GET', headers: target.headers });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`${target.name}: status ${res.statusCode}`);
    return res.headers['access-control-allow-origin'];
  } finally {
    await client.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function summarise(t: Target): Result {
  return {
    name: t.name,
    rps: median(t.runs.map((r) => r.requests.average)),
    p50: median(t.runs.map((r) => r.latency.p50)),
    p99: median(t.runs.map((r) => r.latency.p99)),
    solo50: Math.round(median(t.solo.map((r) => percentile(r, 0.5)))),
    solo99: Math.round(median(t.solo.map((r) => percentile(r, 0.99)))),
    cpuUs: t.cpuPerRequest.length > 0 ? Math.round(median(t.cpuPerRequest)) : undefined,
    rssMb: rssMb(t.pid),
  };
}

function startTs(script: string, args: string[]): ChildProcess {
  return fork(join(here, script), args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);

  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], {
    env: { ...process.env, HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  const upstream = `http://127.0.0.1:${backendPort}`;
  await new Promise((r) => setTimeout(r, 300));

  const fastifyPort = await freePort();
  const barePort = await freePort();
  const wxgwPort = await freePort();
  const guardedPort = await freePort();
  const policyFor = (port: number, defaults: string[], route: string[]): string =>
    [
      'version: 1',
      'server:',
      `  https: { listen: "127.0.0.1:${port}" }`,
      'tls:',
      `  roots: ${chain.root}`,
      '  certificates:',
      `    - { cert: ${chain.fullchain}, key: ${chain.key} }`,
      'upstreams:',
      `  legacy: { url: "${upstream}" }`,
      ...defaults,
      'routes:',
      '  - name: api',
      '    match: { path_prefix: /api/ }',
      '    upstream: legacy',
      ...route,
      '',
    ].join('\n');
  const policy = join(dir, 'gateway.yaml');
  writeFileSync(policy, policyFor(wxgwPort, ['defaults: { allow: any }'], []));
  // 1,000 disjoint /24s with the client's own 127.0.0.1 in the middle, so neither end of the
  // list is a shortcut; the Origin matches the subdomain pattern, the costlier kind of match.
  const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
  cidrs.splice(500, 0, '127.0.0.1/32');
  const origin = 'https://m.shop.example.com';
  const guardedPolicy = join(dir, 'gateway-guarded.yaml');
  writeFileSync(
    guardedPolicy,
    policyFor(guardedPort, [], [
      `    allow: [${cidrs.join(', ')}]`,
      '    cors: { origins: ["https://app.example.com", "https://*.shop.example.com"], credentials: true, methods: [GET, POST], headers: [content-type], expose_headers: [x-request-id] }',
    ]),
  );

  const children: ChildProcess[] = [backend];
  const results: Result[] = [];
  try {
    const targets: Target[] = [{ name: 'direct HTTP to the backend', url: `${upstream}${PATH}`, pid: backend.pid, runs: [], solo: [], cpuPerRequest: [] }];
    const servers: [string, ChildProcess, number][] = [
      ['fastify + @fastify/http-proxy', startTs('targets/fastify-proxy.ts', [String(fastifyPort), upstream, chain.fullchain, chain.key]), fastifyPort],
      ['bare node:https + undici.Pool', startTs('targets/bare-forwarder.ts', [String(barePort), upstream, chain.fullchain, chain.key]), barePort],
      ['wxgw (routing only)', startTs('targets/wxgw.ts', [policy, join(dir, 'wxgw.log')]), wxgwPort],
      [GUARDED, startTs('targets/wxgw.ts', [guardedPolicy, join(dir, 'wxgw-guarded.log')]), guardedPort],
    ];
    for (const [name, child, port] of servers) {
      children.push(child);
      await waitReady(child, name);
      const headers = name === GUARDED ? { origin } : undefined;
      targets.push({ name, url: `https://127.0.0.1:${port}${PATH}`, headers, pid: child.pid, runs: [], solo: [], cpuPerRequest: [] });
    }
    // Measure the guarded path, not a refusal or a CORS-less answer.
    const guarded = targets.find((t) => t.name === GUARDED)!;
    const probe = await soloProbe(guarded, ca);
    if (probe !== origin) throw new Error(`${GUARDED}: expected Access-Control-Allow-Origin ${origin}, got ${probe}`);
    for (const t of targets) await load(t, 2); // warm-up: JIT, TLS sessions, upstream pools
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        t.runs.push(await load(t, seconds));
        // At a fixed rate every target batches alike, so CPU per request compares fairly.
        const cpuBefore = cpuSeconds(t.pid);
        const paced = await load(t, seconds, fixedRate);
        const cpuAfter = cpuSeconds(t.pid);
        if (cpuBefore !== undefined && cpuAfter !== undefined) t.cpuPerRequest.push(((cpuAfter - cpuBefore) * 1e6) / paced.requests.total);
        t.solo.push(await soloLatency(t, ca, 2000));
      }
    }
    results.push(...targets.map(summarise));
  } finally {
    for (const c of children) c.kill();
  }

  const base = results.find((r) => r.name.startsWith('fastify'))!;
  const bare = results.find((r) => r.name.startsWith('bare'))!;
  const direct = results[0]!;
  const routing = results.find((r) => r.name === 'wxgw (routing only)')!;
  const guardedResult = results.find((r) => r.name === GUARDED)!;
  const lines = [
    `wxgw proxy benchmark: GET ${PATH} (1 KB JSON), HTTPS keep-alive, ` +
      `${connections} connections, median of ${rounds} rounds of ${seconds} s, node ${process.version}`,
    '',
    `| target | req/s | p50 ms | p99 ms | 1-conn p50 µs | 1-conn p99 µs | CPU µs/req at ${fixedRate}/s | RSS MB | vs fastify proxy | vs bare |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.solo50} | ${r.solo99} | ${r.cpuUs ?? '-'} | ${r.rssMb ?? '-'} | ` +
        `${(r.rps / base.rps).toFixed(2)}x | ${(r.rps / bare.rps).toFixed(2)}x |`,
    ),
    '',
    `wxgw p99 above direct: ${(routing.p99 - direct.p99).toFixed(2)} ms at ${connections} connections, ` +
      `${((routing.solo99 - direct.solo99) / 1000).toFixed(2)} ms on one connection`,
    `allowlist + CORS vs routing only: ${(guardedResult.rps / routing.rps).toFixed(2)}x req/s, ` +
      `${guardedResult.cpuUs !== undefined && routing.cpuUs !== undefined ? `${guardedResult.cpuUs - routing.cpuUs} µs CPU per request` : 'CPU not measured'}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
