import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { MaskError, maskJsonBuffer, maskValue } from '../../gateway/masking/json-mask.js';
import { createMaskStream } from '../../gateway/masking/json-stream.js';
import type { MaskProfileConfig, MaskTarget } from '../../gateway/types/policy.js';

function target(text: string): MaskTarget {
  if (!text.startsWith('$.')) return { kind: 'key', key: text };
  return { kind: 'path', path: text.slice(2).replace(/\[\*\]/g, '.*').split('.'), text };
}

const config: MaskProfileConfig = {
  name: 'stream',
  drop: ['session_key', 'unionid', '$.list[*].secret', '$.gone[*]'].map(target),
  partial: [
    { target: target('phone'), rule: { keep_start: 3, keep_end: 4, char: '*' } },
    { target: target('$.data.*.idcard'), rule: { keep_start: 6, keep_end: 4, char: '#' } },
  ],
  replace: [{ target: target('token'), value: '[hidden]' }],
  hash: [target('openid')],
  hash_key: 'k',
  detect: ['cn_mobile', 'cn_idcard', 'bank_card', 'email'],
  content_types: [],
  stream_above: 1 << 20,
  pos: { file: 'p.yaml', line: 1, col: 1, path: 'mask_profiles.stream' },
};
const mask = compileMaskProfile(config);
const keysOnly = compileMaskProfile({ ...config, detect: [], partial: [config.partial[0]!], replace: [], hash: [], drop: [target('session_key'), target('unionid')] });

async function streamed(m: typeof mask, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    createMaskStream(m),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

function bytes(buf: Buffer): Buffer[] {
  return Array.from(buf, (b) => Buffer.from([b]));
}

// A small deterministic generator, so a failure names a seed that reproduces it.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Other spellings of the rule names too (sessionKey, SESSION_KEY, ...): names compare folded.
const KEYS = ['id', 'phone', 'session_key', 'unionid', 'openid', 'token', 'name', 'list', 'data', 'secret', 'idcard', 'gone', 'mail', '手机', 'x y', 'sessionKey', 'SESSION_KEY', 'Phone', 'open-id', 'Data'];
const STRINGS = ['13812345678', '11010519491231002X', '6222021234567894', 'alice@example.com', '2023112612345670', 'hello "world"\n', '😀 emoji', '中文', '', '\u0001ctl', 'a\\b/c', '1700000000004', 'call 13812345678 或 bob@example.com', '订单 2023112612345670，电话 139 1234 5678'];

function generate(r: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const k = r();
  if (depth > 3 || k < 0.45) {
    const v = r();
    if (v < 0.5) return pick(STRINGS);
    if (v < 0.75) return pick([0, -1, 13812345678, 3.25, 1e21, 0.000001, 123456789, 6222021234567894]);
    return pick([true, false, null]);
  }
  if (k < 0.7) return Array.from({ length: Math.floor(r() * 5) }, () => generate(r, depth + 1));
  const obj: Record<string, unknown> = {};
  for (let n = Math.floor(r() * 6); n > 0; n--) obj[pick(KEYS)] = generate(r, depth + 1);
  return obj;
}

// Serialises with random whitespace and keys sometimes spelled with \u escapes.
function write(r: () => number, v: unknown): string {
  const ws = (): string => (r() < 0.2 ? ' \n\t'.slice(0, 1 + Math.floor(r() * 3)) : '');
  if (Array.isArray(v)) return `[${ws()}${v.map((e) => write(r, e) + ws()).join(`,${ws()}`)}]`;
  if (typeof v === 'object' && v !== null) {
    const members = Object.entries(v).map(([key, val]) => {
      const name = r() < 0.2 ? `"${[...key].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(key);
      return `${ws()}${name}${ws()}:${ws()}${write(r, val)}${ws()}`;
    });
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(v);
}

function split(r: () => number, buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(r() * (r() < 0.5 ? 3 : 64));
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

test('fed one byte at a time, the stream writes exactly what the buffered masker writes', async () => {
  const docs = [
    '{"session_key":"s","phone":"13812345678","a":[1,2,{"unionid":"u"}]}',
    '{ "a" : 1 , "session\\u005fkey" : {"deep":[1,"13812345678"]} , "token" : [true] , "z":-0.5e-3 }',
    '["13812345678", "x@example.com", 1700000000004, "6222021234567894", {"openid":"o"}]',
    '{"list":[{"secret":1,"k":2},{"k":3,"secret":[1]}],"gone":[1,2,3],"data":{"u":{"idcard":"11010519491231002X"}}}',
    '\ufeff"13812345678"',
    '12345678901234567890',
    '{"phone":13812345678.5,"phone":null,"phone":"😀😀😀😀😀😀😀😀"}',
  ];
  for (const doc of docs) {
    const buf = Buffer.from(doc);
    const expected = maskJsonBuffer(mask, buf).body;
    assert.equal((await streamed(mask, bytes(buf))).toString(), expected.toString(), doc);
    JSON.parse(expected.toString());
  }
});

test('on many generated documents the stream equals the buffered path and maskValue', async () => {
  for (let seed = 1; seed <= 400; seed++) {
    const r = rng(seed);
    const value = generate(r, 0);
    const text = write(r, value);
    const buf = Buffer.from(text);
    const whole = maskJsonBuffer(mask, buf).body;
    const parts = await streamed(mask, split(r, buf));
    assert.equal(parts.toString(), whole.toString(), `seed ${seed}`);
    assert.deepEqual(JSON.parse(whole.toString()), maskValue(mask, JSON.parse(text)), `seed ${seed}`);
  }
});

test('invalid JSON makes the stream fail with MaskError, wherever the chunks split', async () => {
  for (const bad of ['{"phone":"13812345678",}', '[1,2', '{"a":1}{"b":2}', '{"token":[1,}', '{"a":"\\u12G4"}', '   ']) {
    await assert.rejects(streamed(mask, bytes(Buffer.from(bad))), (err: unknown) => err instanceof MaskError && !err.why.includes('138'), bad);
  }
  assert.equal((await streamed(mask, [])).length, 0);
});

test('held bytes are never released before their fate is known', async () => {
  // The output up to the error holds nothing of the member whose key was still being read.
  const out: Buffer[] = [];
  const stream = createMaskStream(keysOnly);
  stream.on('data', (c: Buffer) => out.push(c));
  const failed = new Promise((resolve) => stream.on('error', resolve));
  stream.write('{"a":1,"session');
  stream.write('_key":"secret-value"');
  stream.write('}x');
  assert.ok((await failed) instanceof MaskError);
  assert.equal(Buffer.concat(out).toString(), '{"a":1');
});

test('a large array of user records streams with bounded memory', async () => {
  const record = (i: number): string =>
    JSON.stringify({ id: i, openid: `oUpF8uMuAJO_M2pxb1Q9zNjWeS6o${i}`, unionid: `o6_bm${i}`, session_key: 'tiihtNczf5v6AKRyjwEUhQ==', nickname: '微信用户', phone: `1381234${String(i % 10000).padStart(4, '0')}`, tags: ['a', 'b'], address: { city: 'Shenzhen', zip: '518057' } });
  const pool = Array.from({ length: 100 }, (_, i) => Buffer.from(record(i)));
  const maskedPool = pool.map((b) => maskJsonBuffer(keysOnly, b).body.length);
  const target = 96 * 1024 * 1024;
  let inBytes = 0;
  let expectedOut = 2;
  let count = 0;
  function* chunks(): Generator<Buffer> {
    yield Buffer.from('[');
    while (inBytes < target) {
      const batch: Buffer[] = [];
      for (let n = 0; n < 100; n++, count++) {
        if (count > 0) batch.push(Buffer.from(','));
        batch.push(pool[count % 100]!);
        expectedOut += maskedPool[count % 100]! + (count > 0 ? 1 : 0);
      }
      const chunk = Buffer.concat(batch);
      inBytes += chunk.length;
      yield chunk;
    }
    yield Buffer.from(']');
  }
  global.gc?.();
  const before = process.memoryUsage();
  let peak = 0;
  let outBytes = 0;
  let leaked = false;
  let tail = '';
  await pipeline(
    Readable.from(chunks()),
    createMaskStream(keysOnly),
    new Writable({
      write(c: Buffer, _e, cb) {
        outBytes += c.length;
        const seam = tail + c.toString('latin1', 0, 32);
        if (c.includes('session_key') || c.includes('unionid') || seam.includes('session_key')) leaked = true;
        tail = c.toString('latin1', Math.max(0, c.length - 32));
        const m = process.memoryUsage();
        peak = Math.max(peak, m.rss - before.rss);
        cb();
      },
    }),
  );
  assert.ok(inBytes > 90e6);
  assert.equal(outBytes, expectedOut);
  assert.equal(leaked, false);
  assert.ok(peak < 64 * 1024 * 1024, `rss grew by ${(peak / 1e6).toFixed(1)} MB`);
});

test('long keys and long strings are decided early and still come out right in 1-byte chunks', async () => {
  const long = 'a'.repeat(5000);
  const doc = `{"${'k'.repeat(300)}":"${long}","x\\u0079${'z'.repeat(200)}":["${long}@example.com","13812345678"],"session_key":1,"phone":"${'1'.repeat(3000)}"}`;
  const expected = `{"${'k'.repeat(300)}":"${long}","x\\u0079${'z'.repeat(200)}":["${long}@example.com","138****5678"],"phone":"111${'*'.repeat(2993)}1111"}`;
  assert.equal(maskJsonBuffer(mask, Buffer.from(doc)).body.toString(), expected);
  assert.equal((await streamed(mask, bytes(Buffer.from(doc)))).toString(), expected);
});

test('what would have to be held without bound is refused instead', async () => {
  const spaces = Buffer.alloc(64 * 1024, 0x20);
  const padded = [Buffer.from('{"a":1,'), ...Array<Buffer>(20).fill(spaces), Buffer.from('"b":2}')];
  await assert.rejects(streamed(keysOnly, padded), (err: unknown) => err instanceof MaskError && /whitespace/.test(err.why));
  const huge = [Buffer.from('{"phone":"'), ...Array<Buffer>(130).fill(Buffer.alloc(64 * 1024, 0x31)), Buffer.from('"}')];
  await assert.rejects(streamed(keysOnly, huge), (err: unknown) => err instanceof MaskError && /larger than/.test(err.why));
});
