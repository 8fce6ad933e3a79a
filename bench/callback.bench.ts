// In-process cost of the callback guards' check(), without HTTP: what verifying (and decrypting)
// one callback adds to a request. Safe mode with decryption of a ~500-byte message against plain
// mode (signature only, body still parsed for DTDs), plus the in-between cases and a WeChat Pay
// notification (RSA-2048 verify + AES-GCM) for scale. Each target has a batch of requests with
// distinct nonces and messages (MsgId, notification id), built (and signed) once; every pass over
// the batch gets a new guard with an empty MemoryStore, so every check still claims a fresh
// callback (and commits it, as the proxy does once the upstream answered) and building requests
// stays out of the measurement. Targets run in interleaved rounds and the median is reported.
//   node --import tsx bench/callback.bench.ts             (3 rounds of 2 s per target)
//   BENCH_ROUNDS=5 BENCH_SECONDS=4 node --import tsx bench/callback.bench.ts
//   BENCH_ONLY="plain mode" node --cpu-prof --import tsx bench/callback.bench.ts   (one target, profiled)
//   BENCH_BASELINE=/path/to/other/checkout ...   (its WeChat guard too, in the same rounds, as "(baseline)")
// Time is this process's CPU time (process.cpuUsage), so a busy machine slows it less than the clock.
import { generateKeyPairSync } from 'node:crypto';
import { compileWechatCallback } from '../gateway/guards/wechat-callback.js';
import { compileWechatPayNotify } from '../gateway/guards/wechatpay-notify.js';
import type { CallbackGuard, CallbackRequest } from '../gateway/guards/callback-types.js';
import { MemoryStore } from '../gateway/store/memory-store.js';
import { encryptPayResource, payNotification, payNotificationBody, plainPush, safePush, textMessage } from '../test/helpers/wechat-callback.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const pos = { file: 'bench', line: 1, col: 1, path: 'bench' };
const T = 1_714_036_504;
const now = () => T * 1000;
const account = { appid: 'wx1234567890abcdef', token: 'tok3n-for-bench', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
const wechat = { appid: account.appid, token: account.token, encoding_aes_key: account.encodingAesKey, api_base: new URL('https://api.weixin.qq.com'), api_timeout: 5000, pos };
const BATCH = 2000;
const ANSWER = { status: 200, contentType: 'text/plain', body: Buffer.from('success') };

interface Target {
  name: string;
  /** A new guard with an empty store. */
  guard: () => CallbackGuard;
  batch: CallbackRequest[];
}

const baseline = process.env.BENCH_BASELINE;
type Compile = typeof compileWechatCallback;
type Store = typeof MemoryStore;
const baseCompile = baseline ? ((await import(`${baseline}/gateway/guards/wechat-callback.ts`)) as { compileWechatCallback: Compile }).compileWechatCallback : undefined;
const baseStore = baseline ? ((await import(`${baseline}/gateway/store/memory-store.ts`)) as { MemoryStore: Store }).MemoryStore : undefined;

function wechatGuard(decrypt: boolean, compile: Compile = compileWechatCallback, Memory: Store = MemoryStore): () => CallbackGuard {
  return () => compile({ decrypt, max_skew: 300_000, max_body: 65_536, pos }, wechat, new Memory({ now }), now);
}

function batch(make: (nonce: string) => CallbackRequest): CallbackRequest[] {
  return Array.from({ length: BATCH }, (_, i) => make(`n${i}`));
}

/** Safe-mode requests, each a ~500-byte message of its own (a new MsgId), encrypted and signed. */
function safeMaker(format: 'xml' | 'json'): (nonce: string) => CallbackRequest {
  return (nonce) => safePush(account, textMessage(500), { format, timestamp: T, nonce });
}

const payKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const apiv3 = 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6';
const payResource = encryptPayResource(apiv3, JSON.stringify({ mchid: '1230000109', out_trade_no: '1217752501201407033233368018', trade_state: 'SUCCESS', amount: { total: 100 } }));
const payConfig = {
  apiv3_key: apiv3,
  keys: [{ serial: 'PUB_KEY_ID_BENCH', public_key_pem: payKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString(), file: 'bench' }],
  pos,
};
const payGuard = () => compileWechatPayNotify({ decrypt: true, max_skew: 300_000, max_body: 65_536, pos }, payConfig, new MemoryStore({ now }), now);

const all: Target[] = [
  { name: 'plain mode, signature only (~500 B XML)', guard: wechatGuard(false), batch: batch((nonce) => plainPush(account, textMessage(500), { timestamp: T, nonce })) },
  { name: 'safe mode XML, msg_signature only (decrypt: false)', guard: wechatGuard(false), batch: batch(safeMaker('xml')) },
  { name: 'safe mode XML, decrypt: true (~500 B message)', guard: wechatGuard(true), batch: batch(safeMaker('xml')) },
  { name: 'safe mode JSON, decrypt: true (~500 B message)', guard: wechatGuard(true), batch: batch(safeMaker('json')) },
  { name: 'WeChat Pay, RSA-2048 verify + decrypt', guard: payGuard, batch: batch((nonce) => payNotification(payKeys.privateKey, 'PUB_KEY_ID_BENCH', payNotificationBody(payResource, undefined, `EV-${nonce}`), { timestamp: T, nonce })) },
];
if (baseCompile && baseStore) {
  for (const t of all.slice(0, 4)) {
    const decrypt = t.name.includes('decrypt: true');
    all.push({ name: `${t.name} (baseline)`, guard: wechatGuard(decrypt, baseCompile, baseStore), batch: t.batch });
  }
}
// BENCH_ONLY=plain,decrypt: the targets whose names contain one of the words (for a profile of one path).
const only = process.env.BENCH_ONLY?.split(',');
const targets = only ? all.filter((t) => only.some((w) => t.name.includes(w))) : all;

async function measure(t: Target): Promise<number> {
  let ops = 0;
  let spent = 0;
  const budget = seconds * 1e6;
  while (spent < budget) {
    const guard = t.guard();
    const start = process.cpuUsage();
    for (const req of t.batch) {
      const outcome = await guard.check(req);
      if (outcome.kind !== 'forward') throw new Error(`${t.name}: ${JSON.stringify(outcome)}`);
      outcome.delivery?.commit(ANSWER);
    }
    const used = process.cpuUsage(start);
    spent += used.user + used.system;
    ops += t.batch.length;
  }
  return ops / (spent / 1e6);
}

const results = new Map<string, number[]>(targets.map((t) => [t.name, []]));
for (const t of targets) await measure(t); // warm-up
for (let r = 0; r < rounds; r++) {
  for (const t of targets) results.get(t.name)!.push(await measure(t));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(results.get(targets[0]!.name)!);
console.log(`node ${process.version}, ${rounds} rounds of ${seconds} s per target, median\n`);
console.log('| guard.check() | ops per CPU s | CPU µs/op | vs plain |');
console.log('|---|---:|---:|---:|');
for (const t of targets) {
  const m = median(results.get(t.name)!);
  console.log(`| ${t.name} | ${Math.round(m).toLocaleString('en-US')} | ${(1e6 / m).toFixed(1)} | ${(m / base).toFixed(2)}x |`);
}
