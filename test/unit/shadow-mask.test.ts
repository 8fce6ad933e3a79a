// Masking in report mode (masking/dry-run.ts): which rule names, detectors and headers a profile
// would have fired on, or why it would have failed, and the answer's bytes passed on unchanged.
// Findings are names only: no value of the body ever appears in them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { dryRunAnswer } from '../../gateway/masking/dry-run.js';

const mask = compileMaskProfile({
  name: 'pii',
  drop: [{ kind: 'key', key: 'session_key' }, { kind: 'path', path: ['data', 'unionid'], text: '$.data.unionid' }],
  partial: [{ target: { kind: 'path', path: ['list', '*', 'idcard'], text: '$.list[*].idcard' }, rule: { keep_start: 6, keep_end: 4, char: '*' } }],
  replace: [],
  hash: [],
  detect: ['cn_mobile', 'cn_idcard', 'bank_card', 'email'],
  content_types: [],
  stream_above: 4096,
  headers: { drop: ['x-debug-user'], drop_cookies: ['sid'] },
  pos: { file: 'p.yaml', line: 1, col: 1, path: 'mask_profiles.pii' },
});

/** `prefix` completed with a Luhn check digit. */
function luhn(prefix: string): string {
  for (let d = 0; d <= 9; d++) {
    const s = prefix + d;
    let sum = 0;
    for (let i = s.length - 1, dbl = false; i >= 0; i--, dbl = !dbl) {
      let n = s.charCodeAt(i) - 48;
      if (dbl && (n *= 2) > 9) n -= 9;
      sum += n;
    }
    if (sum % 10 === 0) return s;
  }
  throw new Error('unreachable');
}

const CARD = luhn('622202123456789012'); // 19 digits: beyond what a JSON number keeps exactly
const SECRETS = { session: 'sk-0a1b2c3d4e5f', unionid: 'u-77aa88bb', idcard: '11010519491231002X', phone: '13812345678', card: CARD, email: 'li.ming@example.com' };
const BODY = `{"session_key":"${SECRETS.session}","data":{"unionid":"${SECRETS.unionid}","note":"call ${SECRETS.phone}"},` +
  `"list":[{"idcard":"${SECRETS.idcard}"}],"pay":{"card":${SECRETS.card}},"who":"${SECRETS.email}","Session-Key":"x"}`;

const json = { 'content-type': 'application/json' };

async function drain(body: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

function assertNoValues(findings: unknown): void {
  const text = JSON.stringify(findings);
  for (const value of Object.values(SECRETS)) assert.ok(!text.includes(value), `${value} in ${text}`);
}

test('a JSON answer: the member names and detectors that would have fired, and never a value', async () => {
  const headers = { ...json, 'x-debug-user': 'o-123', 'set-cookie': ['sid=s3ss10n; Path=/', 'lang=zh'] };
  const { findings, body } = await dryRunAnswer(mask, { statusCode: 200, headers, body: Buffer.from(BODY) }, 'GET');
  assert.deepEqual(findings.keys, ['Session-Key', 'idcard', 'session_key', 'unionid']);
  assert.deepEqual(findings.detectors.sort(), ['bank_card', 'cn_mobile', 'email']);
  assert.deepEqual(findings.headers, ['x-debug-user', 'set-cookie']);
  assert.ok(!JSON.stringify(findings).includes('s3ss10n'));
  assert.equal(findings.failed, undefined);
  assert.equal(body.toString(), BODY, 'passed on as it came');
  assertNoValues(findings);
});

test('a gzip answer is decoded to be looked at, and passed on still encoded', async () => {
  const gz = zlib.gzipSync(BODY);
  const { findings, body } = await dryRunAnswer(mask, { statusCode: 200, headers: { ...json, 'content-encoding': 'gzip' }, body: gz }, 'GET');
  assert.ok(findings.keys.includes('session_key'));
  assert.deepEqual(await drain(body), gz);
});

test('a streamed answer is read up to stream_above and passed on byte for byte; a larger one passes unexamined', async () => {
  const chunks = (text: string) => Readable.from(Buffer.from(text).toString('latin1').match(/[\s\S]{1,50}/g)!.map((c) => Buffer.from(c, 'latin1')));
  const small = await dryRunAnswer(mask, { statusCode: 200, headers: json, body: chunks(BODY) }, 'GET');
  assert.ok(small.findings.keys.includes('unionid'));
  assert.equal((await drain(small.body)).toString(), BODY);

  const big = `[${Array.from({ length: 300 }, () => BODY).join(',')}]`;
  const large = await dryRunAnswer(mask, { statusCode: 200, headers: json, body: chunks(big) }, 'GET');
  assert.match(String(large.findings.unexamined), /larger than stream_above/);
  assert.deepEqual(large.findings.keys, []);
  assert.equal((await drain(large.body)).toString(), big);
});

test('what masking would have refused: declared JSON that is not JSON, conflicting types', async () => {
  const broken = await dryRunAnswer(mask, { statusCode: 200, headers: json, body: Buffer.from(`{"phone": ${SECRETS.phone}`) }, 'GET');
  assert.equal(broken.findings.failed, 'the body is not JSON');
  assertNoValues(broken.findings);
  const conflict = await dryRunAnswer(mask, { statusCode: 200, headers: { 'content-type': ['application/json', 'text/html'] }, body: Buffer.from('{}') }, 'GET');
  assert.match(String(conflict.findings.failed), /conflicting Content-Type/);
});

test('text is searched by the detectors; binary media, HEAD and 204 have nothing to mask', async () => {
  const html = await dryRunAnswer(mask, { statusCode: 500, headers: { 'content-type': 'text/html' }, body: Buffer.from(`<p>user ${SECRETS.phone} failed</p>`) }, 'GET');
  assert.deepEqual(html.findings.detectors, ['cn_mobile']);
  assertNoValues(html.findings);
  for (const [res, method] of [
    [{ statusCode: 200, headers: { 'content-type': 'image/png' }, body: Buffer.from(BODY) }, 'GET'],
    [{ statusCode: 200, headers: json, body: Buffer.from(BODY) }, 'HEAD'],
    [{ statusCode: 204, headers: json, body: Buffer.alloc(0) }, 'GET'],
  ] as const) {
    const { findings } = await dryRunAnswer(mask, res, method);
    assert.deepEqual([findings.keys, findings.detectors, findings.failed], [[], [], undefined], `${res.statusCode} ${method}`);
  }
});
