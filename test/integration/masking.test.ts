// Response masking end to end: a real upstream writes exact bytes (plain, gzip, deflate, br,
// chunked, broken), the real gateway masks them, and a real HTTPS client checks the exact bytes it
// receives, the headers that describe them, what the logs say, and that a 200 MB body streams
// through in bounded memory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { request, type RequestOptions as HttpsOptions } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Writable, Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import zlib from 'node:zlib';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { createLogger, redactingLogger } from '../../gateway/observability/logger.js';
import { h2Raw, PROTOCOLS } from '../helpers/h2-client.js';

const HASH_KEY = 'masking-test-hmac-key-0123456789abcdef';
const hmac = (text: string): string => createHmac('sha256', HASH_KEY).update(text, 'utf8').digest('hex');

/** A resident ID with a valid ISO 7064 MOD 11-2 check character, from its first 17 digits. */
function idCard(first17: string): string {
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * w[i]!;
  return first17 + '10X98765432'[sum % 11]!;
}
const VALID_ID = idCard('11010119900307123');
/** Same digits, wrong check character. */
const INVALID_ID = VALID_ID.slice(0, 17) + (VALID_ID[17] === '0' ? '1' : '0');

const KEY_SESSION = Buffer.from('session_key');
const KEY_PHONE = Buffer.from('phone');
const KEY_IDCARD = Buffer.from('idcard');
const MASKED_ID = Buffer.from('110101********1234');

/**
 * Checks a JSON document as it streams, without holding it: bracket balance, one closed top-level
 * value, the records at depth 1, and every string: no `session_key` key, `phone` values masked to
 * 138****NNNN, `idcard` values masked, and no string anywhere that is an unmasked mobile number.
 * Strings longer than 64 bytes are only scanned (none of the checked ones is that long).
 */
class StreamValidator {
  bytes = 0;
  records = 0;
  phones = 0;
  badPhones = 0;
  rawPhones = 0;
  ids = 0;
  badIds = 0;
  sessionKeys = 0;
  inString = false;
  closed = false;
  readonly stack: number[] = [];
  private escape = false;
  private expectKey = false;
  /** 0: another key, 1: phone, 2: idcard. */
  private lastKey = 0;
  private readonly str = Buffer.alloc(64);
  private strLen = 0;

  feed(chunk: Buffer): void {
    const n = chunk.length;
    this.bytes += n;
    let i = 0;
    let nextBs = chunk.indexOf(0x5c);
    while (i < n) {
      if (this.inString) {
        if (this.escape) {
          this.escape = false;
          this.take(chunk, i, i + 1);
          i++;
          continue;
        }
        if (nextBs !== -1 && nextBs < i) nextBs = chunk.indexOf(0x5c, i);
        const q = chunk.indexOf(0x22, i);
        if (nextBs !== -1 && (q === -1 || nextBs < q)) {
          this.take(chunk, i, nextBs + 1);
          this.escape = true;
          i = nextBs + 1;
          continue;
        }
        if (q === -1) {
          this.take(chunk, i, n);
          i = n;
          break;
        }
        this.take(chunk, i, q);
        this.inString = false;
        this.endString();
        i = q + 1;
        continue;
      }
      const b = chunk[i]!;
      i++;
      if (b === 0x22) {
        this.inString = true;
        this.strLen = 0;
      } else if (b === 0x7b || b === 0x5b) {
        if (this.closed) throw new Error('data after the document');
        if (b === 0x7b && this.stack.length === 1) this.records++;
        this.stack.push(b);
        this.expectKey = b === 0x7b;
      } else if (b === 0x7d || b === 0x5d) {
        if (this.stack.pop() !== (b === 0x7d ? 0x7b : 0x5b)) throw new Error(`unbalanced at byte ${this.bytes - n + i - 1}`);
        if (this.stack.length === 0) this.closed = true;
        this.expectKey = false;
      } else if (b === 0x3a) this.expectKey = false;
      else if (b === 0x2c) this.expectKey = this.stack[this.stack.length - 1] === 0x7b;
    }
  }

  private take(chunk: Buffer, from: number, to: number): void {
    const room = 65 - this.strLen; // one past the buffer marks "too long"
    const len = Math.min(to - from, room);
    if (len <= 0) return;
    if (this.strLen + len > 64) {
      this.strLen = 65;
      return;
    }
    chunk.copy(this.str, this.strLen, from, from + len);
    this.strLen += len;
  }

  private is(bytes: Buffer): boolean {
    return this.strLen === bytes.length && this.str.compare(bytes, 0, bytes.length, 0, this.strLen) === 0;
  }

  private endString(): void {
    if (this.strLen > 64) return;
    const s = this.str;
    if (this.expectKey) {
      this.lastKey = this.is(KEY_PHONE) ? 1 : this.is(KEY_IDCARD) ? 2 : 0;
      if (this.is(KEY_SESSION)) this.sessionKeys++;
      return;
    }
    let digits = 0;
    for (let k = 0; k < this.strLen; k++) if (s[k]! >= 0x30 && s[k]! <= 0x39) digits++;
    if (this.strLen === 11 && digits === 11 && s[0] === 0x31 && s[1]! >= 0x33) this.rawPhones++;
    if (this.lastKey === 1) {
      this.phones++;
      // 138****NNNN
      const ok = this.strLen === 11 && s[0] === 0x31 && s[1] === 0x33 && s[2] === 0x38 && s.readUInt32BE(3) === 0x2a2a2a2a && digits === 7;
      if (!ok) this.badPhones++;
    } else if (this.lastKey === 2) {
      this.ids++;
      if (!this.is(MASKED_ID)) this.badIds++;
    }
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Set when the connection broke before the body ended. */
  error?: Error;
}

/** A client that returns the exact bytes received (no decoding) and reports a cut connection. */
function get(port: number, ca: Buffer, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const o: HttpsOptions = {
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      method: opts.method ?? 'GET',
      path,
      headers: { host: 'localhost', ...opts.headers },
      ca,
      agent: false,
      timeout: 20_000,
    };
    const req = request(o, (res) => {
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (error?: Error): void => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ...(error && { error }) });
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => finish(res.complete ? undefined : new Error('incomplete')));
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new Error('aborted')));
      res.on('close', () => finish(res.complete ? undefined : new Error('closed before the end')));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

function decode(encoding: string | undefined, body: Buffer): Buffer {
  let out = body;
  const codings = (encoding ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '' && s !== 'identity');
  for (const c of codings.reverse()) {
    if (c === 'gzip') out = zlib.gunzipSync(out);
    else if (c === 'deflate') out = zlib.inflateSync(out);
    else if (c === 'br') out = zlib.brotliDecompressSync(out);
    else throw new Error(`test client cannot decode ${c}`);
  }
  return out;
}

for (const protocol of PROTOCOLS) {
describe(`response masking through the gateway over ${protocol.name}`, () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  const handlers = new Map<string, Handler>();

  /** Registers what the upstream answers to any path ending in `/name`. */
  const on = (name: string, handler: Handler): void => {
    assert.ok(!handlers.has(name), `duplicate case ${name}`);
    handlers.set(name, handler);
  };
  /** The upstream answers exactly these bytes; Content-Length as given (Node adds one for a single end() otherwise). */
  const serve = (name: string, status: number, headers: OutgoingHttpHeaders, body: Buffer | string): void =>
    on(name, (_req, res) => {
      res.writeHead(status, headers);
      res.end(body);
    });
  /** The upstream answers in chunks, without Content-Length. */
  const serveChunked = (name: string, headers: OutgoingHttpHeaders, parts: (Buffer | string)[]): void =>
    on(name, async (_req, res) => {
      res.writeHead(200, headers);
      for (const p of parts) {
        res.write(p);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    });
  const fetch = (path: string, opts?: { method?: string; headers?: OutgoingHttpHeaders }): Promise<Got> => (protocol.h2 ? h2Raw : get)(t.port, t.ca, path, opts);
  /** The first log line after index `from` that `match` accepts, once it has been written. */
  const logLine = async (from: number, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    for (let tries = 0; tries < 1000; tries++) {
      const line = t.logs.slice(from).find(match);
      if (line) return line;
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.fail('the log line never came');
  };

  before(async () => {
    upstream = await startUpstream((req, res) => {
      const name = (req.url ?? '').split('?')[0]!.split('/').pop()!;
      const h = handlers.get(name);
      if (!h) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`no case ${name}`);
        return;
      }
      return h(req, res);
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
mask_profiles:
  users:
    drop: [session_key, "$.data.secret"]
    partial:
      phone: { keep_start: 3, keep_end: 4 }
      idcard: { keep_start: 6, keep_end: 4 }
      "$.data.owner.name": { keep_start: 1, keep_end: 0, char: "#" }
    replace:
      address: "[hidden]"
      "$.list[*].card_no": "[card]"
    hash: [openid, "$.data.uid"]
    hash_key: \${MASK_HASH_KEY}
  detecting:
    drop: [session_key]
    detect: [cn_mobile, cn_idcard]
  texty:
    partial: { phone: { keep_start: 3, keep_end: 4 } }
    content_types: [text/plain]
  small:
    drop: [session_key]
    partial: { phone: { keep_start: 3, keep_end: 4 } }
    stream_above: 1kb
upstreams:
  legacy: { url: "${upstream.url}", timeout: 60s }
routes:
  - { name: users, match: { path_prefix: /users/ }, upstream: legacy, mask: users }
  - { name: passing, match: { path_prefix: /pass/ }, upstream: legacy, mask: users, on_mask_error: pass }
  - { name: detecting, match: { path_prefix: /detect/ }, upstream: legacy, mask: detecting }
  - { name: texty, match: { path_prefix: /text/ }, upstream: legacy, mask: texty }
  - { name: small, match: { path_prefix: /small/ }, upstream: legacy, mask: small }
  - { name: unmasked, match: { path_prefix: /plain/ }, upstream: legacy, mask: off }
defaults:
  allow: any
`,
      { env: { ...process.env, MASK_HASH_KEY: HASH_KEY } },
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  // ---- rules ----------------------------------------------------------------------------

  test('drop at any depth, partial, replace, hash, paths vs key names: exact bytes', async () => {
    const input =
      '{"session_key":"SK-TOP","data":{"user":{"phone":"13812345678","idcard":"110101199003071234","session_key":"SK-1",' +
      '"address":"1 Main St","openid":"o-abc"},"owner":{"name":"张三丰","phone":"13912345678"},"uid":12345,' +
      '"secret":{"a":[1,2]},"name":"keep"},"list":[{"idcard":"11010119900307123X","card_no":"6222021234567890",' +
      '"session_key":"SK-2","name":"l0"},{"phone":13812345678,"card_no":"x"}],' +
      '"deep":[[{"session_key":"SK-3"},{"x":{"y":{"session_key":"SK-4","z":1}}}]],"card_no":"outside","name":"top"}';
    const expected =
      '{"data":{"user":{"phone":"138****5678","idcard":"110101********1234",' +
      `"address":"[hidden]","openid":"${hmac('o-abc')}"},"owner":{"name":"张##","phone":"139****5678"},"uid":"${hmac('12345')}",` +
      '"name":"keep"},"list":[{"idcard":"110101********123X","card_no":"[card]",' +
      '"name":"l0"},{"phone":"138****5678","card_no":"[card]"}],' +
      '"deep":[[{},{"x":{"y":{"z":1}}}]],"card_no":"outside","name":"top"}';
    serve('nested', 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(input), etag: '"n1"' }, input);
    const r = await fetch('/users/nested');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString('utf8'), expected);
    assert.equal(r.headers['content-length'], String(r.body.length));
    assert.equal(r.headers['etag'], undefined, 'a changed body loses its ETag');
  });

  test('formatting, whitespace and number text are kept; a dropped member takes its comma', async () => {
    const input = '{\n  "a": 1.50e+3,\n  "session_key": "SK-PRETTY",\n  "phone": "13812345678",\n  "big": 12345678901234567890\n}\n';
    const expected = '{\n  "a": 1.50e+3,\n  "phone": "138****5678",\n  "big": 12345678901234567890\n}\n';
    serve('pretty', 200, { 'content-type': 'application/json' }, input);
    const r = await fetch('/users/pretty');
    assert.equal(r.body.toString('utf8'), expected);
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(expected)));
  });

  test('duplicate keys are each masked; keys spelled with \\u escapes are matched', async () => {
    const input =
      '{"phone":"13812345678","phone":"13987654321","session_key":"SK-D1","session_key":"SK-D2",' +
      '"session\\u005fkey":"SK-ESC1","\\u0073ession_key":"SK-ESC2","ph\\u006fne":"13700001111","x":1}';
    const expected = '{"phone":"138****5678","phone":"139****4321","ph\\u006fne":"137****1111","x":1}';
    serve('dupes', 200, { 'content-type': 'application/json' }, input);
    const r = await fetch('/users/dupes');
    assert.equal(r.body.toString('utf8'), expected);
  });

  test('a value split by escapes is masked by its decoded text', async () => {
    // `138123\u00345678` is 13812345678.
    const input = '{"phone":"138123\\u00345678","idcard":"\\u0031\\u0031\\u0030101199003071234"}';
    serve('escval', 200, { 'content-type': 'application/json' }, input);
    const r = await fetch('/users/escval');
    assert.equal(r.body.toString('utf8'), '{"phone":"138****5678","idcard":"110101********1234"}');
  });

  test('detectors: ID-like values under unrelated keys are masked with detect on, untouched with it off', async () => {
    const body = JSON.stringify({
      contact: '13812345678',
      intl: '+86 138-1234-5678',
      escaped: 'x',
      ref: INVALID_ID,
      id_no: VALID_ID,
      order: '2023112612345678',
      text: 'call 13812345678',
      n: 13812345678,
      session_key: 'SK-DET',
    }).replace('"escaped":"x"', '"escaped":"138123\\u00345678"');
    const onExpected =
      `{"contact":"138****5678","intl":"+86 138******5678","escaped":"138****5678","ref":"${INVALID_ID}",` +
      `"id_no":"${VALID_ID.slice(0, 6)}********${VALID_ID.slice(14)}","order":"2023112612345678","text":"call 138****5678","n":"138****5678"}`;
    const offExpected = body.replace(',"session_key":"SK-DET"', '');
    serve('detect1', 200, { 'content-type': 'application/json' }, body);
    const on1 = await fetch('/detect/detect1');
    assert.equal(on1.body.toString('utf8'), onExpected);
    // The users profile names none of these keys and has no detectors.
    const off = await fetch('/users/detect1');
    assert.equal(off.body.toString('utf8'), offExpected);
  });

  test('BOM: a UTF-8 BOM before the JSON is removed and the document masked', async () => {
    // RFC 8259 8.1: senders must not add a BOM, parsers may ignore it. Ignoring it (and not
    // passing it on) is the only answer that is both masked and valid JSON for the client.
    const input = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"phone":"13812345678","session_key":"SK-BOM"}')]);
    serve('bom', 200, { 'content-type': 'application/json; charset=utf-8' }, input);
    const r = await fetch('/users/bom');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString('latin1'), '{"phone":"138****5678"}');
    assert.equal(r.headers['content-length'], String(r.body.length));
  });

  // ---- encodings ------------------------------------------------------------------------

  const encPlain = '{"phone":"13812345678","session_key":"SK-ENC","n":1}';
  const encMasked = '{"phone":"138****5678","n":1}';
  const encoders: Record<string, (b: Buffer) => Buffer> = {
    gzip: (b) => zlib.gzipSync(b),
    deflate: (b) => zlib.deflateSync(b),
    br: (b) => zlib.brotliCompressSync(b),
    'deflate, gzip': (b) => zlib.gzipSync(zlib.deflateSync(b)),
  };
  for (const [encoding, encode] of Object.entries(encoders)) {
    test(`content-encoding ${encoding}: masked, re-encoded, exact Content-Length, ETag dropped`, async () => {
      const name = `enc-${encoding.replace(/\W+/g, '')}`;
      const wire = encode(Buffer.from(encPlain));
      serve(name, 200, { 'content-type': 'application/json', 'content-encoding': encoding, 'content-length': wire.length, etag: '"e1"' }, wire);
      const r = await fetch(`/users/${name}`, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], encoding);
      assert.equal(r.headers['content-length'], String(r.body.length));
      assert.equal(r.headers['etag'], undefined);
      assert.equal(decode(encoding, r.body).toString('utf8'), encMasked);
    });
    test(`content-encoding ${encoding}: nothing to mask, the exact upstream bytes and the ETag are kept`, async () => {
      const name = `same-${encoding.replace(/\W+/g, '')}`;
      const wire = encode(Buffer.from('{"n":1,"list":[{"a":"b"}],"phone_count":2}'));
      serve(name, 200, { 'content-type': 'application/json', 'content-encoding': encoding, 'content-length': wire.length, etag: '"same"' }, wire);
      const r = await fetch(`/users/${name}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, wire);
      assert.equal(r.headers['content-encoding'], encoding);
      assert.equal(r.headers['content-length'], String(wire.length));
      assert.equal(r.headers['etag'], '"same"');
    });
  }

  test('identity body with nothing to mask keeps its ETag and bytes', async () => {
    const body = '{"n": 1, "phones": []}';
    serve('same-plain', 200, { 'content-type': 'application/json', etag: 'W/"p"' }, body);
    const r = await fetch('/users/same-plain');
    assert.equal(r.body.toString('utf8'), body);
    assert.equal(r.headers['etag'], 'W/"p"');
  });

  test('a streamed (over stream_above), chunked gzip body is masked: no Content-Length, no ETag', async () => {
    const rec = (i: number, masked: boolean): string =>
      `{"i":${i},"phone":"${masked ? '138****' : '1380000'}${String(i).padStart(4, '0')}"${masked ? '' : `,"session_key":"SK-S${i}"`}}`;
    const n = 400;
    const plain = '[' + Array.from({ length: n }, (_, i) => rec(i, false)).join(',') + ']';
    const masked = '[' + Array.from({ length: n }, (_, i) => rec(i, true)).join(',') + ']';
    const wire = zlib.gzipSync(Buffer.from(plain));
    const parts: Buffer[] = [];
    for (let k = 0; k < wire.length; k += 97) parts.push(wire.subarray(k, k + 97));
    serveChunked('stream-gz', { 'content-type': 'application/json', 'content-encoding': 'gzip', etag: '"s"' }, parts);
    const r = await fetch('/small/stream-gz');
    assert.equal(r.error, undefined);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers['etag'], undefined);
    assert.equal(zlib.gunzipSync(r.body).toString('utf8'), masked);
  });

  test('unknown content-encoding (compress) -> 502 mask_failed, also with on_mask_error: pass', async () => {
    const wire = Buffer.from('COMPRESSED{"phone":"13812345678"}');
    serve('compress', 200, { 'content-type': 'application/json', 'content-encoding': 'compress' }, wire);
    for (const prefix of ['users', 'pass']) {
      const r = await fetch(`/${prefix}/compress`);
      assert.equal(r.status, 502, prefix);
      assert.equal(JSON.parse(r.body.toString()).error.reason, 'mask_failed');
      assert.ok(!r.body.includes('13812345678'));
    }
  });

  // ---- failures -------------------------------------------------------------------------

  test('broken JSON -> 502 mask_failed JSON; the log names route and reason, never the body', async () => {
    const bodies = {
      truncated: '{"phone":"13812345678","session_key":"SK-BROKEN-1",',
      garbage: '{"phone":"13812345678" "session_key":"SK-BROKEN-2"}',
    };
    for (const [name, body] of Object.entries(bodies)) serve(`broken-${name}`, 200, { 'content-type': 'application/json' }, body);
    const reasons: string[] = [];
    for (const name of Object.keys(bodies)) {
      const before = t.logs.length;
      const r = await fetch(`/users/broken-${name}`);
      assert.equal(r.status, 502);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const err = JSON.parse(r.body.toString()) as { error: { reason: string; message: string; request_id: string } };
      assert.equal(err.error.reason, 'mask_failed');
      assert.equal(err.error.request_id, r.headers['x-request-id']);
      assert.ok(!r.body.includes('13812345678') && !r.body.includes('SK-BROKEN'));
      const line = t.logs.slice(before).find((l) => l['msg'] === 'upstream answer could not be masked');
      assert.ok(line, `log line for ${name}`);
      assert.equal(line['route'], 'users');
      assert.equal(typeof line['why'], 'string');
      reasons.push(String(line['why']));
    }
    assert.match(reasons[0]!, /^invalid JSON: the body ends before the JSON value does/);
    assert.match(reasons[1]!, /^invalid JSON at byte 23: /);
    // Same input, same reason.
    const before = t.logs.length;
    await fetch('/users/broken-truncated');
    assert.equal(t.logs.slice(before).find((l) => l['msg'] === 'upstream answer could not be masked')?.['why'], reasons[0]);
    assert.ok(!t.logText().includes('SK-BROKEN') && !t.logText().includes('13812345678'));
  });

  test('on_mask_error: pass sends the original bytes (plain and undecodable gzip) and logs it', async () => {
    const body = '{"phone":"13812345678",';
    serve('pass-plain', 200, { 'content-type': 'application/json', etag: '"pp"' }, body);
    const bad = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from('not really gzip')]);
    serve('pass-gz', 200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bad.length }, bad);
    const before = t.logs.length;
    const r = await fetch('/pass/pass-plain');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString('utf8'), body);
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(body)));
    const g = await fetch('/pass/pass-gz');
    assert.equal(g.status, 200);
    assert.deepEqual(g.body, bad);
    assert.equal(g.headers['content-encoding'], 'gzip');
    const lines = t.logs.slice(before).filter((l) => l['msg'] === 'upstream answer passed unmasked (on_mask_error: pass)');
    assert.equal(lines.length, 2);
    assert.ok(lines.every((l) => l['route'] === 'passing'));
    // The same undecodable gzip on a fail route is refused.
    serve('fail-gz', 200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bad.length }, bad);
    assert.equal((await fetch('/users/fail-gz')).status, 502);
  });

  test('a stream that turns out broken mid-way cuts the connection; it never looks complete', async () => {
    const good = Array.from({ length: 100 }, (_, i) => `{"i":${i},"phone":"13800001111","session_key":"SK-MID"}`).join(',');
    serveChunked('midbroken', { 'content-type': 'application/json' }, ['[', good, ',{"phone":"13800002222" oops}]']);
    const before = t.logs.length;
    const r = await fetch('/small/midbroken');
    assert.ok(r.error, 'the client must see the connection cut');
    assert.ok(!r.body.includes('13800001111') && !r.body.includes('SK-MID'));
    // The cut reaches the client before the gateway's log line is written: wait for the line.
    const line = await logLine(before, (l) => String(l['msg']).includes('mid-stream'));
    assert.equal(line['route'], 'small');
    assert.ok(!JSON.stringify(line).includes('13800002222'));
  });

  // ---- which responses ------------------------------------------------------------------

  test('content types: +json, odd case and parameters are masked, and so are text/html and text/plain (wx.request parses them as JSON)', async () => {
    const body = '{"phone":"13812345678","session_key":"SK-CT"}';
    const masked = '{"phone":"138****5678"}';
    const cases: [string, string, string, string][] = [
      ['ct-problem', '/users/', 'application/problem+json', masked],
      ['ct-upper', '/users/', 'APPLICATION/JSON; charset=UTF-8', masked],
      ['ct-odd', '/users/', 'Application/Json ;Charset="utf-8"', masked],
      ['ct-vnd', '/users/', 'application/vnd.api+json; ext=x', masked],
      ['ct-html', '/users/', 'text/html; charset=utf-8', masked],
      ['ct-text-users', '/users/', 'text/plain', masked],
      ['ct-text', '/text/', 'Text/Plain; charset=utf-8', '{"phone":"138****5678","session_key":"SK-CT"}'],
      ['ct-json-texty', '/text/', 'application/json', '{"phone":"138****5678","session_key":"SK-CT"}'],
    ];
    for (const [name, , type] of cases) serve(name, 200, { 'content-type': type, 'content-length': Buffer.byteLength(body) }, body);
    for (const [name, prefix, type, expected] of cases) {
      const r = await fetch(prefix + name);
      assert.equal(r.status, 200, name);
      assert.equal(r.body.toString('utf8'), expected, `${name} (${type})`);
      assert.equal(r.headers['content-length'], String(Buffer.byteLength(expected)), name);
    }
  });

  test('HEAD says nothing of the unmasked body: no Content-Length, ETag or digest of it; a mask: off route keeps them', async () => {
    on('head', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '45', etag: '"h"', 'content-md5': 'bm90IHJlYWxseSBhbiBtZDU=', 'last-modified': 'Tue, 01 Dec 2026 10:00:00 GMT' });
      res.end();
    });
    const r = await fetch('/users/head', { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers['transfer-encoding'], undefined);
    assert.equal(r.headers['etag'], undefined);
    assert.equal(r.headers['content-md5'], undefined);
    assert.equal(r.headers['last-modified'], 'Tue, 01 Dec 2026 10:00:00 GMT');
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(r.body.length, 0);
    const off = await fetch('/plain/head', { method: 'HEAD' });
    assert.equal(off.headers['content-length'], '45');
    assert.equal(off.headers['etag'], '"h"');
  });

  test('204 and 304 are untouched', async () => {
    serve('s204', 204, { 'content-type': 'application/json', etag: '"x"' }, '');
    serve('s304', 304, { 'content-type': 'application/json', etag: '"y"' }, '');
    const a = await fetch('/users/s204');
    assert.equal(a.status, 204);
    assert.equal(a.headers['etag'], '"x"');
    assert.equal(a.body.length, 0);
    const b = await fetch('/users/s304', { headers: { 'if-none-match': '"y"' } });
    assert.equal(b.status, 304);
    assert.equal(b.headers['etag'], '"y"');
    assert.equal(b.body.length, 0);
  });

  test('an error status with a JSON body is masked too', async () => {
    serve('s500', 500, { 'content-type': 'application/json' }, '{"error":"x","user":{"phone":"13812345678","session_key":"SK-500"}}');
    const r = await fetch('/users/s500');
    assert.equal(r.status, 500);
    assert.equal(r.body.toString(), '{"error":"x","user":{"phone":"138****5678"}}');
  });

  // ---- bypass attempts ------------------------------------------------------------------

  /** An upstream that honours the client's first Accept-Encoding it knows, as real servers do. */
  const negotiating: Handler = (req, res) => {
    const body = Buffer.from('{"phone":"13812345678","session_key":"SK-NEG"}');
    const offered = String(req.headers['accept-encoding'] ?? '')
      .split(',')
      .map((s) => s.split(';')[0]!.trim().toLowerCase())
      .filter(Boolean);
    const pick = offered.find((e) => ['zstd', 'compress', 'gzip', 'br', 'deflate', 'identity'].includes(e)) ?? 'identity';
    // zstd/compress are not implemented here: the marker stands for bytes the gateway cannot undo.
    const wire =
      pick === 'gzip' ? zlib.gzipSync(body) : pick === 'br' ? zlib.brotliCompressSync(body) : pick === 'deflate' ? zlib.deflateSync(body) : pick === 'identity' ? body : Buffer.concat([Buffer.from(`${pick}:`), body]);
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': wire.length, vary: 'Accept-Encoding' };
    if (pick !== 'identity') headers['content-encoding'] = pick;
    res.writeHead(200, headers);
    res.end(wire);
  };

  test('client Accept-Encoding identity / gzip / br: always masked', async () => {
    on('neg', negotiating);
    for (const ae of ['identity', 'gzip', 'br', 'GZIP;q=1.0', '*']) {
      const r = await fetch('/users/neg', { headers: { 'accept-encoding': ae } });
      assert.equal(r.status, 200, ae);
      assert.equal(decode(r.headers['content-encoding'], r.body).toString(), '{"phone":"138****5678"}', ae);
    }
  });

  test('client Accept-Encoding the gateway cannot decode (zstd, compress) must not break or bypass masking', async () => {
    // A browser-like client offers zstd; an upstream that prefers it must still produce a masked
    // answer: the gateway should only let the upstream choose encodings it can undo.
    for (const ae of ['zstd', 'compress', 'zstd, gzip, br']) {
      const r = await fetch('/users/neg', { headers: { 'accept-encoding': ae } });
      assert.ok(!r.body.includes('13812345678') && !r.body.includes('SK-NEG'), ae);
      assert.equal(r.status, 200, `${ae}: ${r.body.toString()}`);
      assert.equal(decode(r.headers['content-encoding'], r.body).toString(), '{"phone":"138****5678"}', ae);
    }
  });

  test('upstream odd Content-Encoding spelling (GZip, " identity ") is still decoded and masked', async () => {
    const wire = zlib.gzipSync('{"phone":"13812345678"}');
    serve('enc-case', 200, { 'content-type': 'application/json', 'content-encoding': 'GZip', 'content-length': wire.length }, wire);
    const r = await fetch('/users/enc-case');
    assert.equal(zlib.gunzipSync(r.body).toString(), '{"phone":"138****5678"}');
    serve('enc-identity', 200, { 'content-type': 'application/json', 'content-encoding': 'Identity' }, '{"phone":"13812345678"}');
    const i = await fetch('/users/enc-identity');
    assert.equal(i.body.toString(), '{"phone":"138****5678"}');
  });

  test('mask: off route passes everything untouched (control)', async () => {
    const body = '{"phone":"13812345678","session_key":"SK-OFF"}';
    serve('off', 200, { 'content-type': 'application/json', etag: '"o"' }, body);
    const r = await fetch('/plain/off');
    assert.equal(r.body.toString(), body);
    assert.equal(r.headers['etag'], '"o"');
  });

  // ---- a very large body ----------------------------------------------------------------

  test('a ~200 MB chunked JSON array streams through masked with bounded gateway memory', async (tc) => {
    const target = 200 * 1024 * 1024;
    const pad = 'x'.repeat(80);
    const record = (i: number): string =>
      `{"id":${i},"name":"user${i}","phone":"138${String(i % 1e8).padStart(8, '0')}","session_key":"SK-BIG-${i}",` +
      `"idcard":"110101199003071234","note":"${pad}"}`;
    const perRecord = Buffer.byteLength(record(500_000)) + 1;
    const count = Math.ceil(target / perRecord);
    let sent = 0;
    let droppedBytes = 0;
    on('big', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const gen = (function* () {
        yield '[';
        sent = 2;
        const batch = 500;
        for (let i = 0; i < count; i += batch) {
          let s = '';
          for (let k = i; k < Math.min(count, i + batch); k++) {
            s += (k === 0 ? '' : ',') + record(k);
            droppedBytes += `,"session_key":"SK-BIG-${k}"`.length;
          }
          sent += s.length;
          yield s;
        }
        yield ']';
      })();
      Readable.from(gen, { objectMode: false }).pipe(res);
    });

    // What the process still holds after full collections, measured at fixed points of the
    // transfer: RSS also counts garbage not yet collected, and Node 24's young generation alone
    // grows to 64 MB here (V8's new space: 16 MB with --max-semi-space-size=8), so RSS growth
    // says when V8 collects, not what the gateway keeps. Two collections: the first leaves
    // freed ArrayBuffers (most of a stream's bytes) to be swept.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const live = (): number => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const SAMPLE_EVERY = 20 * 1024 * 1024;
    const liveBase = live();
    const liveGrowth: number[] = [];
    const v = new StreamValidator();
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        try {
          const before = v.bytes;
          v.feed(chunk);
          if (Math.floor(v.bytes / SAMPLE_EVERY) > Math.floor(before / SAMPLE_EVERY)) liveGrowth.push(live() - liveBase);
          cb();
        } catch (err) {
          cb(err as Error);
        }
      },
    });
    const base = process.memoryUsage.rss();
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 25);
    let status = 0;
    let resHeaders: IncomingHttpHeaders = {};
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: t.port, servername: 'localhost', path: '/users/big', headers: { host: 'localhost' }, ca: t.ca, agent: false },
          (res) => {
            status = res.statusCode ?? 0;
            resHeaders = res.headers;
            res.on('aborted', () => reject(new Error('aborted')));
            res.pipe(sink);
            sink.on('finish', () => (res.complete ? resolve() : reject(new Error('incomplete'))));
            sink.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end();
      });
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage.rss());
    assert.equal(status, 200);
    assert.equal(resHeaders['content-length'], undefined);
    assert.equal(v.inString, false);
    assert.equal(v.stack.length, 0);
    assert.equal(v.closed, true, 'the array is closed');
    assert.equal(v.records, count);
    assert.equal(v.phones, count);
    assert.equal(v.badPhones, 0);
    assert.equal(v.rawPhones, 0, 'no unmasked phone reached the client');
    assert.equal(v.sessionKeys, 0);
    assert.equal(v.ids, count);
    assert.equal(v.badIds, 0);
    assert.ok(sent >= 200e6, `the upstream sent ${sent} bytes`);
    // Each record loses its session_key member and nothing else changes length.
    assert.equal(v.bytes, sent - droppedBytes);
    const mb = (n: number): string => (n / 1048576).toFixed(1);
    tc.diagnostic(`${sent} bytes sent, ${v.bytes} received, ${v.records} records, peak RSS growth ${mb(peak - base)} MB (not asserted)`);
    tc.diagnostic(`live memory growth after full collections, every ${mb(SAMPLE_EVERY)} MB received: ${liveGrowth.map(mb).join(', ')} MB`);
    // Bounded: what the client, upstream and gateway together hold in flight (socket, TLS and
    // stream buffers, one record being decided) is a few MB however much has passed, and does
    // not grow from the first sample to the last. A gateway that kept the body, or any fraction
    // of it, would be 20 MB further on at each sample.
    assert.ok(liveGrowth.length >= 8, `${liveGrowth.length} samples`);
    const most = Math.max(...liveGrowth);
    assert.ok(most < 16 * 1024 * 1024, `live memory grew by up to ${mb(most)} MB`);
    assert.ok(liveGrowth[liveGrowth.length - 1]! - liveGrowth[0]! < 8 * 1024 * 1024, `live memory grew from ${mb(liveGrowth[0]!)} to ${mb(liveGrowth[liveGrowth.length - 1]!)} MB during the transfer`);
  });

  // ---- logs -----------------------------------------------------------------------------

  test('log redaction: masked keys are [redacted] by a logger built as the gateway builds its own', () => {
    // No gateway log line carries upstream body data; this builds the logger exactly as main.ts
    // does, redacting with the running gateway's snapshot.
    const lines: string[] = [];
    const dest = new Writable({
      write(c: Buffer, _e, cb) {
        lines.push(c.toString());
        cb();
      },
    });
    const log = redactingLogger(createLogger({ level: 'debug', destination: dest }), () => t.gw.snapshot.redactor);
    log.warn(
      { session_key: 'SK-LOG-1', upstream: { session_key: 'SK-LOG-2', user: { phone: '13812345678' } }, err: { response: { body: '{"session_key":"SK-LOG-3"}' } }, body: 'SK-LOG-4' },
      'upstream said something',
    );
    // An error whose message quotes an upstream body: the keys and the detectors scrub it.
    log.error({ err: new Error('upstream answered {"session_key":"SK-LOG-5","contact":"13812345678"}') }, 'request failed');
    const text = lines.join('');
    assert.ok(!/SK-LOG|13812345678/.test(text), text);
    const [line, failure] = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>) as [Record<string, any>, Record<string, any>];
    assert.match(failure['err'].message, /"session_key":"\[redacted\]"/);
    assert.equal(line['session_key'], '[redacted]');
    assert.equal(line['upstream'].session_key, '[redacted]');
    assert.equal(line['upstream'].user.phone, '[redacted]');
  });

  test('nothing masked ever reached the gateway log', () => {
    const text = t.logText();
    assert.ok(text.length > 0);
    assert.ok(!text.includes('SK-'), 'a session_key value was logged');
    for (const phone of ['13812345678', '13912345678', '13987654321', '13700001111', '13800001111', '13800002222', '13800000000']) {
      assert.ok(!text.includes(phone), `${phone} was logged`);
    }
  });
});
}
