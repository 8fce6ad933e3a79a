// Answers that are not JSON: the detectors over text, whole and as it streams, and the choice a
// stream makes between JSON and text from its first byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { createMaskStream } from '../../gateway/masking/json-stream.js';
import { MaskError } from '../../gateway/masking/rewriter.js';
import { maskTextBuffer, TextMasker } from '../../gateway/masking/text-mask.js';
import type { MaskDetector } from '../../gateway/types/policy.js';

const ALL: MaskDetector[] = ['cn_mobile', 'cn_idcard', 'bank_card', 'email'];

const TEXTS = [
  '<p>电话:13812345678，证件 11010519491231002X</p>',
  'call +86 138-1234-5678 or 139 1234 5678; card 6222 0212 3456 7894.',
  'mail bob@example.com, order 2023112612345670 at 1700000000004, ref abc13812345678',
  '13812345678',
  'no digits at all, only words and spaces and punctuation!',
  '',
];

function split(buf: Buffer, seed: number): Buffer[] {
  const parts: Buffer[] = [];
  let s = seed;
  for (let k = 0; k < buf.length; ) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (s % 9);
    parts.push(buf.subarray(k, k + n));
    k += n;
  }
  return parts;
}

function streamedText(parts: Buffer[]): Buffer {
  const m = new TextMasker(ALL);
  return Buffer.concat([...parts.map((p) => m.write(p)), m.end()]);
}

test('text masks the same whole, one byte at a time, and in any split', () => {
  const whole = Buffer.from(TEXTS.join('\n'));
  const expected = maskTextBuffer(ALL, whole)!;
  assert.equal(
    expected.toString(),
    '<p>电话:138****5678，证件 110105********002X</p>\ncall +86 138******5678 or 139******5678; card 622202******7894.\n' +
      'mail b**@example.com, order 2023112612345670 at 1700000000004, ref abc13812345678\n138****5678\n' +
      'no digits at all, only words and spaces and punctuation!\n',
  );
  assert.deepEqual(streamedText(Array.from(whole, (b) => Buffer.from([b]))), expected);
  for (let seed = 1; seed <= 50; seed++) assert.deepEqual(streamedText(split(whole, seed)), expected, `seed ${seed}`);
});

test('bytes the detectors do not replace pass unchanged, whatever the charset or if not text at all', () => {
  const gbk = Buffer.from([0xb5, 0xe7, 0xbb, 0xb0, 0x3a]); // 电话: in GBK
  const body = Buffer.concat([gbk, Buffer.from('13812345678'), Buffer.from([0x00, 0xff, 0xfe, 0x80])]);
  assert.deepEqual(maskTextBuffer(ALL, body), Buffer.concat([gbk, Buffer.from('138****5678'), Buffer.from([0x00, 0xff, 0xfe, 0x80])]));
  assert.equal(maskTextBuffer(ALL, Buffer.from('nothing here')), undefined);
  assert.equal(maskTextBuffer([], Buffer.from('13812345678')), undefined, 'no detectors, nothing to look for');
});

test('what a text stream holds back stays bounded, even in one endless word or digit run', () => {
  const m = new TextMasker(ALL);
  let out = 0;
  for (let k = 0; k < 64; k++) out += m.write(Buffer.alloc(4096, k % 2 ? 0x61 : 0x31)).length;
  assert.ok(64 * 4096 - out <= 4096, `${64 * 4096 - out} bytes held`);
  const spaced = new TextMasker(ALL);
  out = 0;
  for (let k = 0; k < 64; k++) out += spaced.write(Buffer.from('1 2 '.repeat(1024))).length;
  assert.ok(64 * 4096 - out <= 4096, `${64 * 4096 - out} bytes held`);
});

async function streamed(parts: (string | Buffer)[]): Promise<Buffer> {
  const mask = compileMaskProfile({
    name: 't',
    drop: [{ kind: 'key', key: 'session_key' }],
    partial: [],
    replace: [],
    hash: [],
    detect: ALL,
    content_types: [],
    stream_above: 1 << 20,
    pos: { file: 'p.yaml', line: 1, col: 1, path: 'mask_profiles.t' },
  });
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(parts.map((p) => Buffer.from(p))),
    createMaskStream(mask, 'sniff'),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

test('a sniffing stream reads JSON as JSON and anything else as text, from its first byte', async () => {
  assert.equal((await streamed(['\ufeff', '  \n', '{"session_key":"s",', '"tel":13812345678}'])).toString(), '  \n{"tel":"138****5678"}');
  assert.equal((await streamed(['<html>13812', '345678 "session_key":"s"</html>'])).toString(), '<html>138****5678 "session_key":"s"</html>');
  assert.equal((await streamed(['  ', '\n'])).toString(), '  \n');
  assert.equal((await streamed(['13812345678'])).toString(), '138****5678');
  await assert.rejects(streamed(['[1,', '2 oops']), (err: unknown) => err instanceof MaskError);
});
