// What identity, rate limits and masking cost, against wxgw routing only, in one run:
//   - routing only: GET /api/member (a 1 KB user record) proxied as is;
//   - per-openid limit, memory store: a verified HS256 token on every request, one sliding-window
//     decision per request in the in-process store;
//   - per-openid limit, Redis store: the same, decided by a redis-server spawned for the run;
//   - wx-user mask: the same answer with session_key and unionid dropped, phones and ID masked;
//   - full policy: a 1,000-CIDR allowlist, CORS, a per-address limit and the wx-user mask at once;
//   - and streaming: a 50 MB JSON array of user records through a masked and an unmasked route,
//     in MB/s as one client receives it.
// Every gateway runs in its own process; the load generator runs in this one.
//   node --import tsx bench/features.bench.ts
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_EXPORT_MB=200 node --import tsx bench/features.bench.ts
//   BENCH_BASELINE=../wxgw-previous ...  also runs that checkout's wxgw on routing only and the full policy
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { Client } from 'undici';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { startRedis } from '../test/helpers/redis.js';
import { benchPolicy, connections, measure, median, probe, rounds, seconds, startTs, table, target, waitReady, type Target } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const PATH = '/api/member';
const EXPORT_MB = Number(process.env.BENCH_EXPORT_MB ?? 50);
const SECRET = 'bench-jwt-secret-of-at-least-32-bytes!!';
const BASELINE = process.env.BENCH_BASELINE;
const FULL = 'full policy (allowlist, CORS, per-ip limit, mask)';
const ORIGIN = 'https://m.shop.example.com';

/** Downloads the export once; MB/s as received by the client, and the bytes received. */
async function download(url: string, ca: Buffer): Promise<{ mbps: number; bytes: number }> {
  const u = new URL(url);
  const client = new Client(u.origin, { connect: { ca, servername: 'localhost' }, bodyTimeout: 120_000 });
  try {
    const start = process.hrtime.bigint();
    const res = await client.request({ path: u.pathname + u.search, method: 'GET' });
    if (res.statusCode !== 200) throw new Error(`${url}: status ${res.statusCode}`);
    let bytes = 0;
    for await (const chunk of res.body) bytes += (chunk as Buffer).length;
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    return { mbps: bytes / 1024 / 1024 / s, bytes };
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);
  const redis = await startRedis();

  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], {
    env: { ...process.env, HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  const upstream = `http://127.0.0.1:${backendPort}`;
  await new Promise((r) => setTimeout(r, 300));

  const policy = (port: number, sections: string[], defaults: string[]): string =>
    benchPolicy({ port, chain, upstream, sections, tail: ['defaults:', ...(defaults.some((d) => d.startsWith('  allow:')) ? [] : ['  allow: any']), ...defaults] });
  const identity = ['identity:', `  jwt: { secret: "${SECRET}", issuer: bench }`];
  // A budget no run reaches: every request is decided and admitted.
  const limit = ['  rate_limit: { key: openid, limit: 1000000, window: 60s, fallback_key: ip }'];
  const profile = [
    'mask_profiles:',
    '  wx-user:',
    '    drop: [session_key, unionid]',
    '    partial: { phone: { keep_start: 3, keep_end: 4 }, idcard: { keep_start: 6, keep_end: 4 } }',
  ];
  // 1,000 disjoint /24s with the client's 127.0.0.1 in the middle, as in proxy.bench.ts.
  const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
  cidrs.splice(500, 0, '127.0.0.1/32');
  const full = [
    `  allow: [${cidrs.join(', ')}]`,
    '  cors: { origins: ["https://app.example.com", "https://*.shop.example.com"], credentials: true, methods: [GET, POST] }',
    '  rate_limit: { key: ip, limit: 1000000, window: 60s }',
    '  mask: wx-user',
  ];
  const variants: [string, string[], string[], string?][] = [
    ['wxgw routing only', [], []],
    ['per-openid limit, memory store', identity, limit],
    ['per-openid limit, Redis store', [`store: { kind: redis, redis_url: "${redis.url}" }`, ...identity], limit],
    ['wx-user mask', profile, ['  mask: wx-user']],
    [FULL, profile, full],
  ];
  if (BASELINE) variants.push(['baseline wxgw routing only', [], [], BASELINE], [`baseline ${FULL}`, profile, full, BASELINE]);

  const token = await new SignJWT({ openid: 'oBench000000000000000000001' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('bench')
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(SECRET));

  const children: ChildProcess[] = [backend];
  try {
    const targets: Target[] = [];
    for (const [i, [name, sections, defaults, tree]] of variants.entries()) {
      const port = await freePort();
      const file = join(dir, `gateway-${i}.yaml`);
      writeFileSync(file, policy(port, sections, defaults));
      const child = startTs('targets/wxgw.ts', [file, join(dir, `wxgw-${i}.log`)], tree);
      children.push(child);
      await waitReady(child, name);
      // Every target gets the same request, token and Origin included: the ones without identity
      // or CORS forward them untouched, so only what the gateway does with them differs.
      targets.push(target(name, `https://127.0.0.1:${port}${PATH}`, child.pid, { authorization: `Bearer ${token}`, origin: ORIGIN }));
    }
    // Measure the decided and masked paths, not a refusal or an unmasked answer.
    if ((await probe(targets[1]!, ca))['ratelimit-limit'] !== '1000000') throw new Error('memory-store target answered without a rate-limit decision');
    if ((await probe(targets[2]!, ca))['ratelimit-limit'] !== '1000000') throw new Error('Redis-store target answered without a rate-limit decision');
    for (const t of targets.filter((x) => x.name.endsWith(FULL))) {
      const seen = await probe(t, ca);
      if (seen['ratelimit-limit'] !== '1000000' || seen['access-control-allow-origin'] !== ORIGIN) throw new Error(`${t.name}: answered without its limit or CORS decision`);
    }

    const results = await measure(targets, ca);
    const routing = results[0]!;

    const exportPath = `/api/export?mb=${EXPORT_MB}`;
    const plainExport = targets[0]!.url.replace(PATH, exportPath);
    const maskedExport = targets[3]!.url.replace(PATH, exportPath);
    const plain: number[] = [];
    const masked: number[] = [];
    let sizes = { plain: 0, masked: 0 };
    for (let round = 0; round < rounds; round++) {
      const a = await download(plainExport, ca);
      const b = await download(maskedExport, ca);
      plain.push(a.mbps);
      masked.push(b.mbps);
      sizes = { plain: a.bytes, masked: b.bytes };
    }

    const memory = results[1]!;
    const viaRedis = results[2]!;
    const mask = results[3]!;
    const lines = [
      `wxgw feature benchmark: GET ${PATH} (1 KB user JSON), HTTPS keep-alive, ${connections} connections, ` +
        `median of ${rounds} rounds of ${seconds} s, node ${process.version}`,
      '',
      ...table(results, routing, 'routing only'),
      '',
      `per-openid limit, memory store: ${(memory.rps / routing.rps).toFixed(2)}x routing-only req/s, ` +
        `${(memory.cpuUs ?? 0) - (routing.cpuUs ?? 0)} µs CPU per request`,
      `per-openid limit, Redis store: 1-conn p50 ${((viaRedis.solo50 - memory.solo50) / 1000).toFixed(2)} ms above the memory store, ` +
        `${((viaRedis.solo50 - routing.solo50) / 1000).toFixed(2)} ms above routing only`,
      `wx-user mask on 1 KB: ${(mask.rps / routing.rps).toFixed(2)}x routing-only req/s, ${(mask.cpuUs ?? 0) - (routing.cpuUs ?? 0)} µs CPU per request`,
      `${EXPORT_MB} MB export, one client: unmasked ${median(plain).toFixed(0)} MB/s (${sizes.plain} bytes), ` +
        `masked ${median(masked).toFixed(0)} MB/s (${sizes.masked} bytes)`,
    ];
    const fullResult = results[4]!;
    lines.push(`${FULL}: ${(fullResult.rps / routing.rps).toFixed(2)}x routing-only req/s, ${(fullResult.cpuUs ?? 0) - (routing.cpuUs ?? 0)} µs CPU per request`);
    if (BASELINE) {
      for (const [now, was] of [[routing, results[5]!], [fullResult, results[6]!]] as const) {
        lines.push(`${now.name} vs the baseline checkout: ${(now.rps / was.rps).toFixed(3)}x req/s, ${(now.cpuUs ?? 0) - (was.cpuUs ?? 0)} µs CPU per request`);
      }
    }
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) c.kill();
    await redis.stop();
  }
}

await main();
