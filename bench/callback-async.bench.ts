// delivery: async, measured roughly through the real gateway and a real redis-server:
//   - delivery throughput: messages queued in Redis beforehand (many users, so every slot of
//     concurrency works), delivered to a fast upstream; messages/s from the gateway's start
//   - WeChat's answer: p50/p99 of sequential pushes to a sync route and to an async route
//   - memory per queued message: the memory queue (heap growth) and Redis (MEMORY USAGE of the
//     stream / messages), for a ~500-byte push
//   node --import tsx bench/callback-async.bench.ts        (BENCH_MESSAGES=5000 by default)
import { Redis } from 'ioredis';
import { MemoryDeliveryQueue } from '../gateway/store/memory-delivery-queue.js';
import { RedisDeliveryQueue } from '../gateway/store/redis-delivery-queue.js';
import type { QueuedMessage } from '../gateway/store/delivery-queue.js';
import { startTestGateway, type PolicyContext, type TestGateway } from '../test/helpers/gateway.js';
import { httpsRequest } from '../test/helpers/https-client.js';
import { startRedis } from '../test/helpers/redis.js';
import { startUpstream } from '../test/helpers/upstream.js';
import { plainPush, randomEncodingAesKey, textMessage } from '../test/helpers/wechat-callback.js';

const N = Number(process.env.BENCH_MESSAGES ?? 5000);
const LATENCY_N = 300;
const account = { appid: 'wx1234567890abcdef', token: 'tok3nForBench', encodingAesKey: randomEncodingAesKey() };
const body = Buffer.from(textMessage(500));

function message(i: number): QueuedMessage {
  return { route: 'async', key: String(1e15 + i), order: `u-${i}`, path: '/wx', headers: { 'content-type': 'text/xml', 'x-wx-callback-verified': 'signature' }, body, queuedAt: Date.now() };
}

const redis = await startRedis();
let delivered = 0;
let wake: (() => void) | undefined;
const upstream = await startUpstream((_req, res) => {
  delivered++;
  if (delivered >= N) wake?.();
  res.end('success');
});
const policy = (ctx: PolicyContext): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat: { appid: ${account.appid}, token: ${account.token} }
store: { kind: redis, redis_url: "${redis.url}", key_prefix: "bench:" }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - { name: async, match: { path: /wx/async }, upstream: legacy, wechat_callback: { delivery: async } }
  - { name: sync, match: { path: /wx/sync }, upstream: legacy, wechat_callback: {} }
defaults: { allow: any }
`;

// Memory per queued message, in Redis and in memory.
const q = new RedisDeliveryQueue({ url: redis.url, keyPrefix: 'bench:', commandTimeoutMs: 1000, takeoverAfterMs: 60_000, deadLetterMax: 10 });
for (let i = 0; i < N; i += 500) await Promise.all(Array.from({ length: Math.min(500, N - i) }, (_, j) => q.enqueue(message(i + j))));
const r = new Redis(redis.url);
const bytes = Number(await r.call('MEMORY', 'USAGE', 'bench:{deliveries}:queue', 'SAMPLES', '0'));
console.log(`redis: ${N} messages of ${body.length} B body, stream ${bytes} B: ${Math.round(bytes / N)} B per message`);
await q.close();

globalThis.gc?.();
const before = process.memoryUsage().heapUsed;
const mem = new MemoryDeliveryQueue(10);
for (let i = 0; i < N; i++) await mem.enqueue({ ...message(i), body: Buffer.from(body) });
globalThis.gc?.();
console.log(`memory: ~${Math.round((process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - before) / N)} B per message (heap + buffers; run with --expose-gc for a steadier figure)`);

// Throughput: the gateway starts with N messages waiting.
const started = performance.now();
const all = new Promise<void>((resolve) => (wake = resolve));
const t: TestGateway = await startTestGateway(policy);
await all;
const seconds = (performance.now() - started) / 1000;
console.log(`throughput: ${N} delivered in ${seconds.toFixed(2)} s (gateway start included): ${Math.round(N / seconds)} messages/s`);

// WeChat's answer, sync against async, sequential.
async function latencies(path: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < LATENCY_N; i++) {
    const xml = textMessage(500).replace('24571234567890123', String(2e15 + i + (path.includes('async') ? 0 : LATENCY_N)));
    const push = plainPush(account, xml);
    const t0 = performance.now();
    const res = await httpsRequest(t.port, t.ca, { method: 'POST', path: `${path}?${push.query.toString()}`, headers: push.headers, body: push.body });
    out.push(performance.now() - t0);
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${res.text}`);
  }
  return out.sort((a, b) => a - b);
}
const pct = (xs: number[], p: number): string => xs[Math.floor((xs.length - 1) * p)]!.toFixed(2);
for (const path of ['/wx/sync', '/wx/async', '/wx/sync', '/wx/async']) {
  const xs = await latencies(path);
  console.log(`${path}: p50 ${pct(xs, 0.5)} ms, p99 ${pct(xs, 0.99)} ms (${LATENCY_N} sequential, new TLS connection each)`);
}
await t.close();
await upstream.close();
r.disconnect();
await redis.stop();
