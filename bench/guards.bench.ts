// CPU per request of each guard feature in process, interleaved in one run: the route's compiled
// guard chain (1,000-CIDR allowlist, CORS, per-ip limit on the memory store timed as the gateway
// times it, a per-openid limit behind a cached session token), against the routing-only chain.
// Load on the machine moves every variant alike, so the differences stand where req/s do not.
//   node --import tsx bench/guards.bench.ts
//   BENCH_ITERATIONS=200000 BENCH_ROUNDS=5 ...
import type { IncomingHttpHeaders } from 'node:http';
import { compileGuardChain, type GuardInput, type RouteGuards, type Verdict } from '../gateway/guards/chain.js';
import { compileCors } from '../gateway/guards/cors.js';
import { compileIpAllow, EVERYONE } from '../gateway/guards/ip-allow.js';
import { compileRateLimits } from '../gateway/guards/rate-limit.js';
import { SessionSigner } from '../gateway/identity/session-token.js';
import { compileIdentity } from '../gateway/identity/verify.js';
import { Metrics } from '../gateway/observability/metrics.js';
import { MemoryStore } from '../gateway/store/memory-store.js';
import { timedStore } from '../gateway/store/timed-store.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const memory = new MemoryStore();
const metrics = new Metrics(() => [], () => memory);
const store = timedStore(memory, metrics.storeTimer(memory.kind));
const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
cidrs.splice(500, 0, '127.0.0.1/32');
const pos = { file: 'bench.yaml', line: 1, column: 1 };
const base: RouteGuards = { ipAllow: EVERYONE, cors: undefined, callback: undefined, identity: undefined, identityRequired: false, rateLimit: undefined, store, storeFailOpen: false };
const variants: Record<string, RouteGuards> = {
  routing: base,
  allow: { ...base, ipAllow: compileIpAllow({ any: false, cidrs } as never, []) },
  cors: { ...base, cors: compileCors({ origins: ['https://app.example.com', 'https://*.shop.example.com'], credentials: true, methods: ['GET', 'POST'], headers: [], expose_headers: [], max_age: 600 }) },
  limit: { ...base, rateLimit: compileRateLimits('api', [{ key: 'ip', limit: 1e9, window: 60_000, scope: 'route', ipv6_prefix: 64, pos } as never]) },
};
variants.full = { ...variants.allow!, cors: variants.cors!.cors, rateLimit: variants.limit!.rateLimit };
// A wxgw session token on every request (its signature verified once, then cached), counted per openid.
const SESSION = { signing_key: 'bench-session-signing-key-that-is-long-enough', ttl: 3_600_000, issuer: 'wxgw' };
const signer = await SessionSigner.create(SESSION);
const { token } = await signer.sign({ openid: 'o-bench', sid: 's1' });
variants['per-openid limit'] = {
  ...base,
  identity: await compileIdentity({ token: { header: 'authorization' }, upstream_header: 'x-wx-openid', unionid_header: 'x-wx-unionid', session: SESSION, pos } as never, { signer }),
  rateLimit: compileRateLimits('api', [{ key: 'openid', fallback_key: 'ip', limit: 1e9, window: 60_000, scope: 'route', ipv6_prefix: 64, pos } as never]),
};

const headers: IncomingHttpHeaders = { host: '127.0.0.1', origin: 'https://m.shop.example.com', 'user-agent': 'wrk', authorization: `Bearer ${token}` };
const input: GuardInput = { method: 'GET', url: '/api/member', headers, client: '127.0.0.1', preflight: false, readBody: () => Promise.reject(new Error('no body')) };

async function runOnce(chain: ReturnType<typeof compileGuardChain>, n: number): Promise<number> {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    // As dispatch does: only a verdict that comes as a promise is waited for.
    const run: Verdict | Promise<Verdict> = chain.run(input);
    const v = run instanceof Promise ? await run : run;
    if (v.kind !== 'continue') throw new Error(`refused: ${JSON.stringify(v)}`);
  }
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / n;
}

const chains = Object.fromEntries(Object.entries(variants).map(([k, g]) => [k, compileGuardChain(g)]));
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(chains).map((k) => [k, []]));
for (const c of Object.values(chains)) await runOnce(c, ITERATIONS / 10);
for (let r = 0; r < ROUNDS; r++) for (const [k, c] of Object.entries(chains)) samples[k]!.push(await runOnce(c, ITERATIONS));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const routing = median(samples.routing!);
process.stdout.write('| chain | CPU µs per request (median) | over routing |\n|---|---:|---:|\n');
for (const [k, xs] of Object.entries(samples)) process.stdout.write(`| ${k} | ${median(xs).toFixed(2)} | +${(median(xs) - routing).toFixed(2)} |\n`);
await memory.close();
