// wxgw beside the proxies ops already run, in one run on one machine: nginx, HAProxy and Caddy
// from Debian's packages, a plain Fastify + @fastify/http-proxy server, the bare node:https +
// undici forwarder, and wxgw (routing only, and with every per-request feature on). Every proxy
// terminates TLS 1.3 with the same chain in front of the same backend, and is pinned to CPU 1;
// the load generator (wrk, one thread) and the backend share CPU 0. Each target's req/s is shown
// as a ratio to direct HTTP to the backend, and its CPU time per request (the whole process tree:
// nginx's and wxgw's workers included) so the per-core cost compares across machines.
//   npm run bench:peers
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=50 npm run bench:peers
//   BENCH_WORKERS=2 npm run bench:peers   (also wxgw with server.workers: 2, pinned to CPU 1 too)
// A peer that is not installed is installed with apt-get when the bench runs as root; if that
// fails it is skipped with a line saying so, never silently.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, median, probe, startTs, target, waitReady } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const PATH = '/api/member';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 0);
const ORIGIN = 'https://m.shop.example.com';
const LOAD_CPU = '0';
const PROXY_CPU = '1';

interface Peer {
  name: string;
  url: string;
  headers?: Record<string, string>;
  pid: number;
  rps: number[];
  p50: number[];
  p99: number[];
  cpuUs: number[];
}

/** User plus system CPU seconds of `pid` and every descendant, from /proc. */
function treeCpuSeconds(pid: number): number {
  const stats = new Map<number, { ppid: number; cpu: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone between readdir and read
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    stats.set(Number(entry), { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / 100 });
  }
  let total = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    total += stats.get(p)?.cpu ?? 0;
    for (const [child, s] of stats) if (s.ppid === p) todo.push(child);
  }
  return total;
}

function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** wrk's duration figures ("850.12us", "1.20ms", "1.01s") in milliseconds. */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) throw new Error(`unreadable wrk latency ${text}`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

function wrk(t: Peer, seconds: number): { rps: number; requests: number; p50: number; p99: number } {
  const args = ['-c', LOAD_CPU, 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  for (const [k, v] of Object.entries(t.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(t.url);
  const run = spawnSync('taskset', args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${t.name}: wrk failed: ${run.stderr}`);
  const out = run.stdout;
  if (/Non-2xx or 3xx responses/.test(out) || /Socket errors/.test(out)) throw new Error(`${t.name}: errors under load:\n${out}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = /\s50%\s+(\S+)/.exec(out)?.[1];
  const p99 = /\s99%\s+(\S+)/.exec(out)?.[1];
  if (!rps || !requests || !p50 || !p99) throw new Error(`${t.name}: unreadable wrk output:\n${out}`);
  return { rps, requests, p50: ms(p50), p99: ms(p99) };
}

/** Installs a Debian package when it is missing and the bench may; false (with a line) when it cannot. */
function ensureCommand(command: string, pkg: string): boolean {
  if (spawnSync('sh', ['-c', `command -v ${command}`]).status === 0) return true;
  if (process.getuid?.() === 0) {
    const got = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (got.status === 0 && spawnSync('sh', ['-c', `command -v ${command}`]).status === 0) return true;
  }
  process.stdout.write(`skipped ${pkg}: \`${command}\` is not installed and \`apt-get install -y ${pkg}\` did not provide it\n`);
  return false;
}

function nginxConfig(dir: string, port: number, backend: number, cert: string, key: string): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  upstream legacy { server 127.0.0.1:${backend}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://legacy;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`;
}

function haproxyConfig(port: number, backend: number, pem: string): string {
  return `global
  nbthread 1
  log stdout format raw local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend tls
  bind 127.0.0.1:${port} ssl crt ${pem} ssl-min-ver TLSv1.3
  default_backend legacy
backend legacy
  server b1 127.0.0.1:${backend}
`;
}

function caddyConfig(port: number, backend: number, cert: string, key: string): string {
  return `{
  admin off
  auto_https off
  servers {
    protocols h1
  }
}
https://127.0.0.1:${port}, https://localhost:${port} {
  tls ${cert} ${key} {
    protocols tls1.3
  }
  reverse_proxy 127.0.0.1:${backend}
}
`;
}

/** Resolves once `url` answers 200; a server that never does fails the run after 20 s. */
async function listening(url: string, ca: Buffer, headers?: Record<string, string>, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`the server for ${url} exited with ${child.exitCode}`);
    try {
      await probe(target('probe', url, undefined, headers), ca);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within 20 s`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-peers-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);
  const pem = join(dir, 'haproxy.pem');
  writeFileSync(pem, readFileSync(chain.fullchain, 'utf8') + readFileSync(chain.key, 'utf8'));
  if (!ensureCommand('wrk', 'wrk')) throw new Error('the peers benchmark needs wrk');

  const backendPort = await freePort();
  const children: ChildProcess[] = [];
  const backend = spawn('taskset', ['-c', LOAD_CPU, process.execPath, join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], {
    env: { ...process.env, HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  children.push(backend);
  const upstream = `http://127.0.0.1:${backendPort}`;
  const peers: Peer[] = [];
  const add = (name: string, url: string, pid: number, headers?: Record<string, string>): void => {
    peers.push({ name, url, pid, rps: [], p50: [], p99: [], cpuUs: [], ...(headers && { headers }) });
  };
  const spawnPinned = (command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess => {
    const child = spawn('taskset', ['-c', PROXY_CPU, command, ...args], { stdio: ['ignore', 'ignore', 'inherit'], env });
    children.push(child);
    return child;
  };

  try {
    await listening(`${upstream}${PATH}`, ca);
    add('direct HTTP to the backend', `${upstream}${PATH}`, backend.pid!);

    if (ensureCommand('nginx', 'nginx')) {
      const port = await freePort();
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, nginxConfig(dir, port, backendPort, chain.fullchain, chain.key));
      const child = spawnPinned('nginx', ['-c', conf, '-p', dir]);
      await listening(`https://127.0.0.1:${port}${PATH}`, ca, undefined, child);
      add('nginx (1 worker)', `https://127.0.0.1:${port}${PATH}`, child.pid!);
    }
    if (ensureCommand('haproxy', 'haproxy')) {
      const port = await freePort();
      const conf = join(dir, 'haproxy.cfg');
      writeFileSync(conf, haproxyConfig(port, backendPort, pem));
      const child = spawnPinned('haproxy', ['-f', conf, '-db']);
      await listening(`https://127.0.0.1:${port}${PATH}`, ca, undefined, child);
      add('HAProxy (1 thread)', `https://127.0.0.1:${port}${PATH}`, child.pid!);
    }
    if (ensureCommand('caddy', 'caddy')) {
      const port = await freePort();
      const conf = join(dir, 'Caddyfile');
      writeFileSync(conf, caddyConfig(port, backendPort, chain.fullchain, chain.key));
      const child = spawnPinned('caddy', ['run', '--config', conf, '--adapter', 'caddyfile'], { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir });
      await listening(`https://127.0.0.1:${port}${PATH}`, ca, undefined, child);
      add('Caddy', `https://127.0.0.1:${port}${PATH}`, child.pid!);
    }

    for (const [name, script] of [
      ['fastify + @fastify/http-proxy', 'targets/fastify-proxy.ts'],
      ['bare node:https + undici.Pool', 'targets/bare-forwarder.ts'],
    ] as const) {
      const port = await freePort();
      const child = startTs(script, [String(port), upstream, chain.fullchain, chain.key]);
      children.push(child);
      await waitReady(child, name);
      pin(child.pid!, PROXY_CPU);
      add(name, `https://127.0.0.1:${port}${PATH}`, child.pid!);
    }

    const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
    cidrs.splice(500, 0, '127.0.0.1/32');
    const profile = ['mask_profiles:', '  wx-user:', '    drop: [session_key, unionid]', '    partial: { phone: { keep_start: 3, keep_end: 4 }, idcard: { keep_start: 6, keep_end: 4 } }'];
    const full = [
      'defaults:',
      `  allow: [${cidrs.join(', ')}]`,
      '  cors: { origins: ["https://app.example.com", "https://*.shop.example.com"], credentials: true, methods: [GET, POST] }',
      '  rate_limit: { key: ip, limit: 1000000, window: 60s }',
      '  mask: wx-user',
    ];
    const variants: [string, string[], string[], string[]][] = [
      ['wxgw (routing only)', [], ['defaults: { allow: any }'], []],
      ['wxgw (allowlist, CORS, per-ip limit, mask)', profile, full, []],
    ];
    if (WORKERS > 1) variants.push([`wxgw (routing only, ${WORKERS} workers)`, [], ['defaults: { allow: any }'], [`  workers: ${WORKERS}`]]);
    for (const [i, [name, sections, tail, server]] of variants.entries()) {
      const port = await freePort();
      const file = join(dir, `wxgw-${i}.yaml`);
      writeFileSync(file, benchPolicy({ port, chain, upstream, sections, tail, server }));
      const url = `https://127.0.0.1:${port}${PATH}`;
      const headers = { origin: ORIGIN };
      if (server.length > 0) {
        // Through the CLI, as ops run it: the primary forks the workers.
        const child = spawnPinned(process.execPath, [join(root, 'bin/wxgw.js'), 'start', '--config', file]);
        await listening(url, ca, headers, child);
        add(name, url, child.pid!, headers);
      } else {
        const child = startTs('targets/wxgw.ts', [file, join(dir, `wxgw-${i}.log`)]);
        children.push(child);
        await waitReady(child, name);
        pin(child.pid!, PROXY_CPU);
        add(name, url, child.pid!, headers);
      }
    }
    const fullTarget = peers.find((p) => p.name.includes('mask'))!;
    const seen = await probe(target(fullTarget.name, fullTarget.url, undefined, fullTarget.headers), ca);
    if (seen['access-control-allow-origin'] !== ORIGIN || seen['ratelimit-limit'] !== '1000000') throw new Error('the full-policy wxgw answered without its CORS or rate-limit decision');

    for (const p of peers) wrk(p, 2); // warm-up: JIT, TLS sessions, upstream pools
    for (let round = 0; round < ROUNDS; round++) {
      for (const p of peers.map((_, i) => peers[(i + round) % peers.length]!)) {
        const before = treeCpuSeconds(p.pid);
        const r = wrk(p, SECONDS);
        const after = treeCpuSeconds(p.pid);
        p.rps.push(r.rps);
        p.p50.push(r.p50);
        p.p99.push(r.p99);
        p.cpuUs.push(((after - before) * 1e6) / r.requests);
      }
    }
  } finally {
    for (const c of children) c.kill();
  }

  const direct = median(peers[0]!.rps);
  const routing = median(peers.find((p) => p.name === 'wxgw (routing only)')!.rps);
  const lines = [
    `peers benchmark: GET ${PATH} (1 KB JSON) over TLS 1.3 keep-alive, wrk -t1 -c${CONNECTIONS} on CPU ${LOAD_CPU} with the backend, ` +
      `each proxy alone on CPU ${PROXY_CPU}, median of ${ROUNDS} interleaved rounds of ${SECONDS} s, node ${process.version}`,
    '',
    '| target | req/s | vs direct | vs wxgw routing | p50 ms | p99 ms | CPU µs/req (process tree, saturated) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...peers.map((p) => {
      const rps = median(p.rps);
      return `| ${p.name} | ${Math.round(rps)} | ${(rps / direct).toFixed(2)} | ${(rps / routing).toFixed(2)} | ${median(p.p50).toFixed(2)} | ${median(p.p99).toFixed(2)} | ${Math.round(median(p.cpuUs))} |`;
    }),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
