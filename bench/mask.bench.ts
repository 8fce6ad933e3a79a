// In-process cost of response masking with a wx-user profile (drop session_key and unionid,
// partial phone 3/4 and idcard 6/4): maskJsonBuffer on a 1 KB user answer, the no-parse fast path
// on a 1 KB answer without those keys, and the stream on a 50 MB array of user records and on a
// 50 MB array of dense 200-byte records with all four fields, where per-value costs dominate,
// and on the sample backend's export records. Each line gives wall-clock and CPU-time figures.
//   node --import tsx bench/mask.bench.ts          (BENCH_STREAM_MB=200 for larger arrays)
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compileMaskProfile } from '../gateway/masking/compile.js';
import { maskJsonBuffer } from '../gateway/masking/json-mask.js';
import { createMaskStream } from '../gateway/masking/json-stream.js';
import type { MaskProfileConfig } from '../gateway/types/policy.js';

const streamMb = Number(process.env.BENCH_STREAM_MB ?? 50);

const profile: MaskProfileConfig = {
  name: 'wx-user',
  drop: [
    { kind: 'key', key: 'session_key' },
    { kind: 'key', key: 'unionid' },
  ],
  partial: [
    { target: { kind: 'key', key: 'phone' }, rule: { keep_start: 3, keep_end: 4, char: '*' } },
    { target: { kind: 'key', key: 'idcard' }, rule: { keep_start: 6, keep_end: 4, char: '*' } },
  ],
  replace: [],
  hash: [],
  detect: [],
  content_types: [],
  stream_above: 1 << 20,
  pos: { file: 'bench', line: 1, col: 1, path: 'mask_profiles.wx-user' },
};
const mask = compileMaskProfile(profile);

function user(i: number): Record<string, unknown> {
  return {
    id: 100000 + i,
    openid: `oUpF8uMuAJO_M2pxb1Q9zNjWeS6o${i}`,
    unionid: `o6_bmasdasdsad6_2sgVt7hMZOPfL${i}`,
    session_key: 'tiihtNczf5v6AKRyjwEUhQ==',
    nickname: '微信用户',
    avatar: 'https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132',
    phone: `138${String(10000000 + i).slice(-8)}`,
    idcard: '11010519491231002X',
    gender: 1,
    city: 'Shenzhen',
    province: 'Guangdong',
    country: 'China',
    created_at: '2026-11-26T10:00:00.000Z',
    tags: ['vip', 'beta'],
    address: { street: '科技园南区 1 号', zip: '518057' },
  };
}

function pad(doc: Record<string, unknown>, size: number): Buffer {
  const base = JSON.stringify(doc);
  return Buffer.from(JSON.stringify({ ...doc, note: 'x'.repeat(Math.max(0, size - base.length - 10)) }));
}

/** CPU seconds of this process: on a shared machine a steadier measure than the clock. */
function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function opsPerSec(fn: () => void, ms = 1500): { ops: number; cpuUs: number } {
  for (let i = 0; i < 2000; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const cpu0 = cpu();
  const until = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < until) {
    for (let i = 0; i < 500; i++) fn();
    n += 500;
    now = process.hrtime.bigint();
  }
  return { ops: n / (Number(now - start) / 1e9), cpuUs: ((cpu() - cpu0) * 1e6) / n };
}

const masked = pad({ code: 0, data: user(1) }, 1024);
const plain = pad({ code: 0, data: { id: 1, nickname: '微信用户', city: 'Shenzhen', tags: ['a', 'b'] } }, 1024);
if (!maskJsonBuffer(mask, masked).changed || maskJsonBuffer(mask, plain).changed) throw new Error('bench documents do not exercise the profile');

const buffered = opsPerSec(() => maskJsonBuffer(mask, masked));
const fast = opsPerSec(() => maskJsonBuffer(mask, plain));
console.log(
  `maskJsonBuffer, 1 KB user answer (${masked.length} B): ${Math.round(buffered.ops).toLocaleString('en')} ops/s, ` +
    `${((buffered.ops * masked.length) / 1e6).toFixed(0)} MB/s, ${buffered.cpuUs.toFixed(2)} µs CPU per answer`,
);
console.log(`fast path, 1 KB answer without masked keys (${plain.length} B): ${Math.round(fast.ops).toLocaleString('en')} ops/s, ${fast.cpuUs.toFixed(2)} µs CPU`);

// Small, so that the four masked fields are most of the work, as in the gateway profile.
function dense(i: number): Buffer {
  const rec = {
    id: 100000 + i,
    openid: `oUpF8uMuAJO_M2pxb1Q9zN${i}`,
    unionid: `o6_bmasdasdsad6_2sgVt${i}`,
    session_key: 'tiihtNczf5v6AKRyjwEUhQ==',
    phone: `138${String(10000000 + i).slice(-8)}`,
    idcard: '11010519491231002X',
    name: '',
  };
  rec.name = 'x'.repeat(200 - JSON.stringify(rec).length);
  return Buffer.from(JSON.stringify(rec));
}

// The array arrives in 64 KB chunks, as from a socket; records are prebuilt so that generating
// them does not count.
const total = streamMb * 1024 * 1024;
function arrayChunks(records: Buffer[]): Buffer[] {
  const chunks: Buffer[] = [];
  let sent = 0;
  let pending: Buffer[] = [Buffer.from('[')];
  let pendingSize = 1;
  for (let i = 0; sent + pendingSize < total; i++) {
    const rec = records[i % records.length]!;
    pending.push(i === 0 ? rec : Buffer.concat([Buffer.from(','), rec]));
    pendingSize += rec.length + 1;
    if (pendingSize >= 65536) {
      const chunk = Buffer.concat(pending);
      sent += chunk.length;
      chunks.push(chunk);
      pending = [];
      pendingSize = 0;
    }
  }
  pending.push(Buffer.from(']'));
  chunks.push(Buffer.concat(pending));
  return chunks;
}

async function streamArray(what: string, records: Buffer[]): Promise<void> {
  const chunks = arrayChunks(records);
  const inBytes = chunks.reduce((s, c) => s + c.length, 0);
  let outBytes = 0;
  let peak = 0;
  const base = process.memoryUsage();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      outBytes += chunk.length;
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
      cb();
    },
  });
  const t0 = process.hrtime.bigint();
  const cpu0 = cpu();
  await pipeline(Readable.from(chunks), createMaskStream(mask), sink);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `stream, ${(inBytes / 1e6).toFixed(0)} MB array of ${what}: ${(inBytes / 1e6 / secs).toFixed(0)} MB/s, ${(inBytes / 1e6 / (cpu() - cpu0)).toFixed(0)} MB per CPU second ` +
      `(${(outBytes / 1e6).toFixed(0)} MB out, heap+buffers growth beyond the prebuilt input ${(peak / 1e6).toFixed(1)} MB)`,
  );
}

await streamArray('user records', Array.from({ length: 64 }, (_, i) => Buffer.from(JSON.stringify(user(i)))));
await streamArray('dense 200-byte records', Array.from({ length: 64 }, (_, i) => dense(i)));

// The sample backend's export record (docker/sample-backend/server.mjs), all four fields in 180 bytes.
function exported(i: number): Buffer {
  const n = String(i).padStart(8, '0');
  return Buffer.from(
    JSON.stringify({ id: i, openid: `oExport${n}`, unionid: `uExport${n}`, session_key: 'tiihtNczf5v6AKRyjwEUhQ==', nickname: `User ${i}`, phone: `138${n}`, idcard: '11010519491231002X', city: 'Shenzhen' }),
  );
}
await streamArray('the sample backend export records', Array.from({ length: 256 }, (_, i) => exported(i)));
