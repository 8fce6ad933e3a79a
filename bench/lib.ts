// What the benchmarks share: processes for targets, autocannon runs, one-connection latency, the
// server's own CPU per request at a fixed rate, and the medians reported.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Client } from 'undici';

const here = fileURLToPath(new URL('.', import.meta.url));
export const seconds = Number(process.env.BENCH_SECONDS ?? 6);
export const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
export const fixedRate = Number(process.env.BENCH_RATE ?? 1500);
export const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);

export interface Result {
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

export interface Target {
  name: string;
  url: string;
  /** Sent with every request, e.g. an allowed Origin or a session token. */
  headers?: Record<string, string>;
  pid: number | undefined;
  runs: autocannon.Result[];
  solo: number[][];
  cpuPerRequest: number[];
}

export function target(name: string, url: string, pid: number | undefined, headers?: Record<string, string>): Target {
  return { name, url, pid, runs: [], solo: [], cpuPerRequest: [], ...(headers && { headers }) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before it was ready`)));
  });
}

/** User plus system CPU seconds of a process so far (clock ticks are 1/100 s on Linux). */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return kb ? Math.round(Number(kb) / 1024) : undefined;
}

export async function load(t: Target, duration: number, overallRate?: number): Promise<autocannon.Result> {
  const r = await autocannon({ url: t.url, headers: t.headers, connections, pipelining: 1, duration, ...(overallRate ? { overallRate } : {}) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${t.name}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  return r;
}

/** Sequential requests on one keep-alive connection, timed one by one in microseconds. */
export async function soloLatency(t: Target, ca: Buffer, count: number): Promise<number[]> {
  const url = new URL(t.url);
  const client = new Client(url.origin, { connect: { ca, servername: 'localhost' } });
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      const res = await client.request({ path: `${url.pathname}${url.search}`, method: 'GET', headers: t.headers });
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`${t.name}: status ${res.statusCode}`);
      times.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  } finally {
    await client.close();
  }
  return times.sort((a, b) => a - b);
}

/** One request's answer headers (the request must also succeed). */
export async function probe(t: Target, ca: Buffer): Promise<Record<string, string | string[] | undefined>> {
  const url = new URL(t.url);
  const client = new Client(url.origin, { connect: { ca, servername: 'localhost' } });
  try {
    const res = await client.request({ path: `${url.pathname}${url.search}`, method: 'GET', headers: t.headers });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`${t.name}: status ${res.statusCode}`);
    return res.headers;
  } finally {
    await client.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/**
 * Interleaved rounds over every target: saturating load, then a fixed rate for CPU per request,
 * then one-connection latency; a noisy moment on a shared machine lands on no target alone.
 */
export async function measure(targets: Target[], ca: Buffer): Promise<Result[]> {
  for (const t of targets) await load(t, 2); // warm-up: JIT, TLS sessions, upstream pools
  for (let round = 0; round < rounds; round++) {
    // Each round starts one target later, so no target always runs first (after the warm-ups) or
    // right after the same neighbour: a position in the order shows up in every target alike.
    for (const t of targets.map((_, i) => targets[(i + round) % targets.length]!)) {
      t.runs.push(await load(t, seconds));
      // At a fixed rate every target batches alike, so CPU per request compares fairly.
      const cpuBefore = cpuSeconds(t.pid);
      const paced = await load(t, seconds, fixedRate);
      const cpuAfter = cpuSeconds(t.pid);
      if (cpuBefore !== undefined && cpuAfter !== undefined) t.cpuPerRequest.push(((cpuAfter - cpuBefore) * 1e6) / paced.requests.total);
      t.solo.push(await soloLatency(t, ca, 2000));
    }
  }
  return targets.map(summarise);
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

/** A markdown table of the results, each compared with `base`. */
export function table(results: Result[], base: Result, baseName: string): string[] {
  return [
    `| target | req/s | p50 ms | p99 ms | 1-conn p50 µs | 1-conn p99 µs | CPU µs/req at ${fixedRate}/s | RSS MB | vs ${baseName} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.solo50} | ${r.solo99} | ${r.cpuUs ?? '-'} | ${r.rssMb ?? '-'} | ` +
        `${(r.rps / base.rps).toFixed(2)}x |`,
    ),
  ];
}

/**
 * A policy for a benchmarked gateway: HTTPS on `port` with the run's chain, one upstream
 * `legacy`, an `api` route for /api/. `server` goes into the server section (trusted_proxies...),
 * `sections` before `upstreams` (store, identity, mask_profiles...), `tail` after it (defaults),
 * `route` into the api route, `routes` after it.
 */
export function benchPolicy(opts: {
  port: number;
  chain: { root: string; fullchain: string; key: string };
  upstream: string;
  server?: string[];
  sections?: string[];
  tail?: string[];
  route?: string[];
  routes?: string[];
}): string {
  return [
    'version: 1',
    'server:',
    `  https: { listen: "127.0.0.1:${opts.port}" }`,
    ...(opts.server ?? []),
    'tls:',
    `  roots: ${opts.chain.root}`,
    '  certificates:',
    `    - { cert: ${opts.chain.fullchain}, key: ${opts.chain.key} }`,
    ...(opts.sections ?? []),
    'upstreams:',
    `  legacy: { url: "${opts.upstream}" }`,
    ...(opts.tail ?? []),
    'routes:',
    '  - name: api',
    '    match: { path_prefix: /api/ }',
    '    upstream: legacy',
    ...(opts.route ?? []),
    ...(opts.routes ?? []),
    '',
  ].join('\n');
}

/** A TypeScript target script under bench/targets, in its own process. */
/** `tree`: another wxgw checkout (with its own node_modules) whose bench/ script to run instead of this one's. */
export function startTs(script: string, args: string[], tree?: string): ChildProcess {
  const file = tree ? join(tree, 'bench', script) : join(here, script);
  return fork(file, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...(tree && { cwd: tree }) });
}
