// Masking as a mini-program sees it: wx.request parses an answer as JSON whatever its
// Content-Type, so none of the spellings a backend uses may skip the mask. A real upstream
// writes the exact header lines and bytes of each case, the real gateway masks them over real
// HTTPS, and the client checks the exact bytes and header lines it receives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { request } from 'node:https';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import zlib from 'node:zlib';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const HASH_KEY = 'masking-view-hmac-key-0123456789abcdef';
const hmac = (text: string): string => createHmac('sha256', HASH_KEY).update(text, 'utf8').digest('hex');

/** A resident ID with a valid check character, from its first 17 digits. */
function idCard(first17: string): string {
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * w[i]!;
  return first17 + '10X98765432'[sum % 11]!;
}
const ID = idCard('11010119900307123');
const ID_MASKED = `${ID.slice(0, 6)}********${ID.slice(14)}`;
/** Passes Luhn, starts with a scheme digit. */
const CARD = '6222021234567894';
const CARD_MASKED = '622202******7894';

interface Got {
  status: number;
  /** Header lines exactly as received: [name, value] in order, names in lower case. */
  lines: [string, string][];
  body: Buffer;
}

/** One header's values, in the order its lines came. */
const values = (r: Got, name: string): string[] => r.lines.filter(([n]) => n === name).map(([, v]) => v);
const one = (r: Got, name: string): string | undefined => {
  const v = values(r, name);
  assert.ok(v.length <= 1, `${name} came ${v.length} times`);
  return v[0];
};

type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;
/** Header lines for the upstream to write; an array is one line per item, Content-Type included. */
type HeaderLines = Record<string, string | string[] | number | undefined>;

describe('masking whatever the Content-Type, names, numbers, headers and HEAD', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  const handlers = new Map<string, Handler>();
  const on = (name: string, handler: Handler): void => {
    assert.ok(!handlers.has(name), `duplicate case ${name}`);
    handlers.set(name, handler);
  };
  /** The upstream answers these header lines (an array value is one line per item) and bytes. */
  const serve = (name: string, headers: HeaderLines, body: Buffer | string, status = 200): void =>
    on(name, (_req, res) => {
      res.statusCode = status;
      for (const [h, v] of Object.entries(headers)) if (v !== undefined) res.setHeader(h, v);
      res.end(body);
    });
  /** The upstream answers in these chunks, without Content-Length. */
  const serveChunked = (name: string, headers: OutgoingHttpHeaders, parts: (Buffer | string)[]): void =>
    on(name, async (_req, res) => {
      res.writeHead(200, headers);
      for (const p of parts) {
        res.write(p);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    });

  const fetch = (path: string, method = 'GET'): Promise<Got> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: t.port, servername: 'localhost', method, path, headers: { host: 'localhost' }, ca: t.ca, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const lines: [string, string][] = [];
            for (let k = 0; k < res.rawHeaders.length; k += 2) lines.push([res.rawHeaders[k]!.toLowerCase(), res.rawHeaders[k + 1]!]);
            resolve({ status: res.statusCode ?? 0, lines, body: Buffer.concat(chunks) });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });

  before(async () => {
    upstream = await startUpstream((req, res) => {
      const name = (req.url ?? '').split('/').pop()!;
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
    drop: [session_key, unionid]
    partial: { phone: { keep_start: 3, keep_end: 4 } }
    hash: [openid]
    hash_key: \${MASK_HASH_KEY}
    detect: [cn_mobile, cn_idcard, bank_card]
    headers: { drop: [x-debug-user], drop_cookies: [sid] }
  exact:
    drop: [session_key]
    key_match: exact
  streamy:
    drop: [session_key]
    detect: [cn_mobile, cn_idcard, bank_card]
    stream_above: 1kb
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: users, match: { path_prefix: /u/ }, upstream: legacy, mask: users }
  - { name: passing, match: { path_prefix: /p/ }, upstream: legacy, mask: users, on_mask_error: pass }
  - { name: exact, match: { path_prefix: /x/ }, upstream: legacy, mask: exact }
  - { name: streamy, match: { path_prefix: /s/ }, upstream: legacy, mask: streamy }
  - { name: unmasked, match: { path_prefix: /o/ }, upstream: legacy, mask: off }
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

  // ---- every Content-Type a mini-program parses ----------------------------------------------

  const USER = '{"session_key":"SK-CT","phone":"13812345678","n":1}';
  const USER_MASKED = '{"phone":"138****5678","n":1}';

  test('JSON is masked under no, an empty, a repeated, a text, a legacy and a +json Content-Type', async () => {
    const cases: [string, string | string[] | undefined, string[]][] = [
      ['ct-missing', undefined, []],
      ['ct-empty', '', ['']],
      ['ct-repeated', ['application/json', 'application/json; charset=utf-8'], ['application/json', 'application/json; charset=utf-8']],
      ['ct-html', 'text/html; charset=UTF-8', ['text/html; charset=UTF-8']],
      ['ct-plain', 'text/plain', ['text/plain']],
      ['ct-text-json', 'text/json', ['text/json']],
      ['ct-x-json', 'application/x-json', ['application/x-json']],
      // The gateway's header hygiene names the charset of a single JSON type.
      ['ct-vnd', 'application/vnd.legacy+json', ['application/vnd.legacy+json; charset=utf-8']],
      ['ct-xml', 'application/xml', ['application/xml']],
    ];
    for (const [name, type] of cases) serve(name, { 'content-type': type, etag: '"ct"', 'content-length': USER.length }, USER);
    for (const [name, , types] of cases) {
      const r = await fetch(`/u/${name}`);
      assert.equal(r.status, 200, name);
      assert.equal(r.body.toString(), USER_MASKED, name);
      assert.deepEqual(values(r, 'content-length'), [String(USER_MASKED.length)], name);
      assert.deepEqual(values(r, 'content-type'), types, name);
      assert.deepEqual(values(r, 'etag'), [], name);
    }
  });

  test('conflicting Content-Type headers fail closed, on two lines or one, even with on_mask_error: pass', async () => {
    serve('ct-two', { 'content-type': ['text/html', 'application/json'] }, USER);
    serve('ct-one-line', { 'content-type': 'text/html, application/json' }, USER);
    const before = t.logs.length;
    for (const [path, method] of [['/u/ct-two', 'GET'], ['/u/ct-one-line', 'GET'], ['/p/ct-two', 'GET'], ['/u/ct-two', 'HEAD']] as const) {
      const r = await fetch(path, method);
      assert.equal(r.status, 502, path);
      assert.equal(one(r, 'content-type'), 'application/json; charset=utf-8');
      if (r.body.length > 0) assert.equal((JSON.parse(r.body.toString()) as { error: { reason: string } }).error.reason, 'mask_failed', path);
      assert.ok(!r.body.includes('13812345678') && !r.body.includes('SK-CT'), path);
    }
    const why = t.logs.slice(before).filter((l) => l['msg'] === 'upstream answer could not be masked').map((l) => l['why']);
    assert.deepEqual(why, Array(4).fill('conflicting Content-Type headers: text/html, application/json'));
  });

  test('a text answer that is not JSON has what the detectors know masked inside it, byte for byte', async () => {
    const page = (phone: string, id: string, card: string): string =>
      `<!DOCTYPE html><html><body><h1>Fatal error</h1><p>用户 电话:${phone}，证件 ${id}</p><pre>card=${card}; order 2023112612345678; ts 1700000000004; session_key=SK</pre></body></html>\n`;
    const html = page('13812345678', ID, CARD);
    const masked = page('138****5678', ID_MASKED, CARD_MASKED);
    serve('html-page', { 'content-type': 'text/html; charset=UTF-8', etag: '"page"' }, html);
    serve('plain-text', { 'content-type': 'text/plain' }, 'call +86 138-1234-5678 or 13912345678.');
    serve('no-type-text', {}, 'id:13812345678');
    const r = await fetch('/u/html-page');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), masked);
    assert.equal(one(r, 'content-length'), String(Buffer.byteLength(masked)));
    assert.equal(one(r, 'etag'), undefined);
    assert.equal((await fetch('/u/plain-text')).body.toString(), 'call +86 138******5678 or 139****5678.');
    assert.equal((await fetch('/u/no-type-text')).body.toString(), 'id:138****5678');
    // Declared JSON that is not JSON is still refused, not searched as text.
    serve('json-not-json', { 'content-type': 'application/json' }, 'call 13812345678');
    assert.equal((await fetch('/u/json-not-json')).status, 502);
  });

  test('a gzip text answer is decoded, searched, and encoded again', async () => {
    const wire = zlib.gzipSync('<p>13812345678</p>');
    serve('html-gz', { 'content-type': 'text/html', 'content-encoding': 'gzip', 'content-length': wire.length }, wire);
    const r = await fetch('/u/html-gz');
    assert.equal(one(r, 'content-encoding'), 'gzip');
    assert.equal(one(r, 'content-length'), String(r.body.length));
    assert.equal(zlib.gunzipSync(r.body).toString(), '<p>138****5678</p>');
  });

  test('binary media pass as they are, digits that look like a phone number included', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(' 13812345678 '), Buffer.from([0, 0xff, 0x22, 0x7b])]);
    serve('png', { 'content-type': 'image/png', etag: '"img"', 'content-length': png.length }, png);
    serve('octets', { 'content-type': 'application/octet-stream', 'content-length': png.length }, png);
    for (const name of ['png', 'octets']) {
      const r = await fetch(`/u/${name}`);
      assert.equal(r.status, 200, name);
      assert.deepEqual(r.body, png, name);
      assert.equal(one(r, 'content-length'), String(png.length), name);
    }
    assert.equal(one(await fetch('/u/png'), 'etag'), '"img"');
  });

  test('a streamed text answer is masked across chunk boundaries; one that opens as JSON is masked as JSON', async () => {
    const pad = '<p>' + 'x'.repeat(1200) + '</p>';
    serveChunked('text-stream', { 'content-type': 'text/html' }, [pad, '<p>call 138', '1234', '5678 or 139 1234 ', '5678, id ', ID.slice(0, 9), ID.slice(9), '</p>', pad]);
    const r = await fetch('/s/text-stream');
    assert.equal(r.status, 200);
    assert.equal(one(r, 'content-length'), undefined);
    assert.equal(r.body.toString(), `${pad}<p>call 138****5678 or 139******5678, id ${ID_MASKED}</p>${pad}`);
    const records = Array.from({ length: 40 }, (_, i) => `{"i":${i},"session_key":"SK-${i}","tel":1381234${String(i).padStart(4, '0')}}`);
    serveChunked('json-as-text', { 'content-type': 'text/plain' }, ['\n[', records.join(','), ']']);
    const j = await fetch('/s/json-as-text');
    const expected = Array.from({ length: 40 }, (_, i) => `{"i":${i},"tel":"138****${String(i).padStart(4, '0')}"}`);
    assert.equal(j.body.toString(), `\n[${expected.join(',')}]`);
  });

  // ---- names, numbers, numbers inside text -----------------------------------------------

  test('mask keys cover every case and naming style of their name unless key_match is exact', async () => {
    const body =
      '{"session_key":"a","sessionKey":"b","SessionKey":"c","SESSION_KEY":"d","session-key":"e","Session_Key":"f",' +
      '"Phone":"13812345678","PHONE_NUMBER":"x","openId":"o-1","UnionID":"u","user":{"sessionkey":"g","sessionKeys":"keep"}}';
    serve('styles', { 'content-type': 'application/json' }, body);
    const r = await fetch('/u/styles');
    assert.equal(r.body.toString(), `{"Phone":"138****5678","PHONE_NUMBER":"x","openId":"${hmac('o-1')}","user":{"sessionKeys":"keep"}}`);
    const x = await fetch('/x/styles');
    assert.equal(
      x.body.toString(),
      '{"sessionKey":"b","SessionKey":"c","SESSION_KEY":"d","session-key":"e","Session_Key":"f",' +
        '"Phone":"13812345678","PHONE_NUMBER":"x","openId":"o-1","UnionID":"u","user":{"sessionkey":"g","sessionKeys":"keep"}}',
    );
  });

  test('detectors see numbers (masked to a string) and numbers inside longer text', async () => {
    const body = `{"contact":13812345678,"card":${CARD},"count":123456,"price":-13812345678,"note":"call 13812345678 or 电话13912345678","ref":"abc13812345678"}`;
    serve('numbers', { 'content-type': 'application/json' }, body);
    const r = await fetch('/u/numbers');
    assert.equal(r.body.toString(), `{"contact":"138****5678","card":"${CARD_MASKED}","count":123456,"price":-13812345678,"note":"call 138****5678 or 电话139****5678","ref":"abc13812345678"}`);
  });

  // ---- headers ----------------------------------------------------------------------------

  const LEAKY_HEADERS: HeaderLines = {
    'x-debug-user': 'alice',
    'x-session-key': 'SK-H1',
    'session-key': 'SK-H2',
    'x-phone': '13812345678',
    'x-openid': 'o-1',
    'x-trace': 'keep',
    'set-cookie': ['session_key=SK-C1; Path=/; HttpOnly', 'sid=abc; Secure', 'SessionKey=SK-C2', 'theme=dark; Path=/'],
  };
  const expectMaskedHeaders = (r: Got, what: string): void => {
    for (const h of ['x-debug-user', 'x-session-key', 'session-key']) assert.deepEqual(values(r, h), [], `${what}: ${h}`);
    assert.equal(one(r, 'x-phone'), '138****5678', what);
    assert.equal(one(r, 'x-openid'), hmac('o-1'), what);
    assert.equal(one(r, 'x-trace'), 'keep', what);
    assert.deepEqual(values(r, 'set-cookie'), ['theme=dark; Path=/'], what);
    const raw = JSON.stringify(r.lines);
    assert.ok(!raw.includes('SK-') && !raw.includes('13812345678'), what);
  };

  test('response headers and Set-Cookie lines are masked on every kind of answer, HEAD and passed-unmasked included', async () => {
    serve('h-json', { ...LEAKY_HEADERS, 'content-type': 'application/json' }, USER);
    serve('h-png', { ...LEAKY_HEADERS, 'content-type': 'image/png' }, Buffer.from([0x89, 0x50]));
    serve('h-broken', { ...LEAKY_HEADERS, 'content-type': 'application/json' }, '{"phone":');
    const json = await fetch('/u/h-json');
    assert.equal(json.body.toString(), USER_MASKED);
    expectMaskedHeaders(json, 'masked JSON');
    expectMaskedHeaders(await fetch('/u/h-png'), 'binary');
    expectMaskedHeaders(await fetch('/u/h-json', 'HEAD'), 'HEAD');
    const passed = await fetch('/p/h-broken');
    assert.equal(passed.body.toString(), '{"phone":');
    expectMaskedHeaders(passed, 'on_mask_error: pass');
    // Without the profile, every header reaches the client (control).
    const off = await fetch('/o/h-json');
    assert.equal(one(off, 'x-session-key'), 'SK-H1');
    assert.equal(values(off, 'set-cookie').length, 4);
  });

  // ---- HEAD ---------------------------------------------------------------------------------

  test('HEAD on a masked route gives no length of the unmasked body; binary media keep theirs', async () => {
    on('head-json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': '4711', etag: '"5f-1267"', digest: 'sha-256=abc' });
      res.end();
    });
    on('head-png', (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': '4711', etag: '"img"' });
      res.end();
    });
    const r = await fetch('/u/head-json', 'HEAD');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.lines.filter(([n]) => ['content-length', 'transfer-encoding', 'etag', 'digest'].includes(n)),
      [],
    );
    assert.equal(r.body.length, 0);
    // Past stream_above the gateway does not collect the (empty) body first: same answer.
    on('head-big', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(50 * 1024 * 1024), 'set-cookie': 'session_key=SK-HEAD' });
      res.end();
    });
    const big = await fetch('/u/head-big', 'HEAD');
    assert.equal(big.status, 200);
    assert.deepEqual(big.lines.filter(([n]) => ['content-length', 'transfer-encoding', 'set-cookie'].includes(n)), []);
    const png = await fetch('/u/head-png', 'HEAD');
    assert.equal(one(png, 'content-length'), '4711');
    assert.equal(one(png, 'etag'), '"img"');
  });

  test('nothing masked reached the gateway log', () => {
    const text = t.logText();
    assert.ok(!text.includes('SK-') && !text.includes('13812345678') && !text.includes(ID) && !text.includes(CARD));
  });
});
