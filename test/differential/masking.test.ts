// Masking as a mini-program sees it: wx.request parses a body as JSON whatever its Content-Type,
// so every answer of a masked route that parses as JSON must be masked, however the real backend
// labels it (PHP's default text/html, text/plain, none, empty, duplicated), in every form personal
// data takes (a JSON number under an unlisted key, a number inside text, key spellings), in
// response headers, and without a HEAD answer giving away the unmasked length.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_KINDS, type BackendKind } from '../helpers/backends.js';
import { repoRoot } from '../helpers/process.js';
import { assertRefused, PHONE, startStand, type Stand } from './setup.js';

interface Personal {
  user: Record<string, unknown>;
  order_no: string;
  count: number;
}

const PERSONAL = readFileSync(join(repoRoot, 'test/backends/personal.json'), 'utf8').trim();
const SESSION_KEYS = ['SK-SNAKE-UPPER', 'SK-CAMEL', 'SK-SCREAM', 'SK-PASCAL'];

/** Labels each backend can put on JSON (PHP's header() cannot send an empty or a second Content-Type). */
function jsonLabels(kind: BackendKind): string[] {
  const all = ['json', 'html', 'plain', 'text-json', 'x-json', 'problem-json', 'none'];
  return kind === 'php' ? all : [...all, 'empty'];
}

for (const kind of BACKEND_KINDS) {
  describe(`masking: ${kind}`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind);
    });
    after(() => s?.close());

    test('the backend labels JSON the way it does', async () => {
      // The premise of the tests below, checked on the backend itself rather than assumed.
      const direct = await fetch(`${s.backend.url}/mask/html`);
      assert.match(direct.headers.get('content-type') ?? '', /^text\/html/i);
      assert.equal((await direct.text()).trim(), PERSONAL);
    });

    test('every answer that parses as JSON is masked, whatever its Content-Type', async () => {
      for (const label of jsonLabels(kind)) {
        const res = await s.send(`/mask/${label}`);
        assert.equal(res.status, 200, `${label}: ${res.text}`);
        const doc = res.json<Personal>();
        assert.equal(doc.user['phone'], '138****5678', `${label}: the answer was not masked`);
        assert.equal(doc.user['name'], 'Mei');
      }
    });

    test('JSON labelled application/javascript is masked too (a JSONP-era label the issue does not name)', async () => {
      const res = await s.send('/mask/javascript');
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json<Personal>().user['phone'], '138****5678');
    });

    test('detectors see numbers, and numbers inside longer strings', async () => {
      const res = await s.send('/mask/json');
      assert.equal(res.status, 200, res.text);
      const doc = res.json<Personal>();
      assert.ok(!String(doc.user['mobile_no']).includes(PHONE), `a phone number as a JSON number: ${String(doc.user['mobile_no'])}`);
      assert.ok(!String(doc.user['note']).includes(PHONE), `a phone number inside text: ${String(doc.user['note'])}`);
      assert.match(String(doc.user['note']), /^call .* after six$/);
    });

    test('mask keys match every naming style: session_key covers Session_Key, sessionKey, SESSION_KEY, SessionKey', async () => {
      const res = await s.send('/mask/json');
      assert.equal(res.status, 200, res.text);
      for (const value of SESSION_KEYS) assert.ok(!res.text.includes(value), `${value} left the gateway`);
    });

    test('a text body that is not JSON gets the detectors run over it', async () => {
      const res = await s.send('/mask/text');
      assert.equal(res.status, 200, res.text);
      assert.ok(!res.text.includes(PHONE), res.text);
      assert.match(res.text, /^Call Mei at .+ after six\.\n?$/);
    });

    if (kind !== 'php') {
      test('conflicting Content-Type headers fail closed with 502 mask_failed', async () => {
        const res = await s.send('/mask/dup');
        assertRefused(res, 502, 'mask_failed');
        assert.ok(!res.text.includes(PHONE));
      });
    }

    test('HEAD on a masked route gives no unmasked length', async () => {
      for (const label of ['json', 'html']) {
        const get = await s.send(`/mask/${label}`);
        const head = await s.send({ method: 'HEAD', target: `/mask/${label}` });
        assert.equal(head.status, 200);
        const length = head.header('content-length');
        if (length !== undefined) {
          assert.notEqual(Number(length), Buffer.byteLength(PERSONAL), `${label}: HEAD gave the unmasked length`);
          assert.equal(Number(length), get.body.length, `${label}: HEAD's length is not the masked answer's`);
        }
      }
    });

    test('paths and query values are masked in the log', async () => {
      const from = s.gateway.logText().length;
      await s.send(`/mask/hello?mobile=13912345678`);
      await s.send(`/mask/${PHONE}`);
      const logged = s.gateway.logText().slice(from);
      assert.ok(logged.includes('/mask/'), 'the requests were logged');
      assert.ok(!logged.includes(PHONE) && !logged.includes('13912345678'), logged);
    });

    test('Set-Cookie: session_key=... and a header named like a rule are masked by the key rules', async () => {
      const res = await s.send('/mask/cookie');
      assert.equal(res.status, 200, res.text);
      for (const [name, value] of res.lines) assert.ok(!value.includes('SK-COOKIE-SECRET'), `${name}: ${value}`);
      for (const value of res.all('x-phone')) assert.ok(!value.includes(PHONE), `X-Phone: ${value}`);
      // Cookies no rule names still arrive.
      assert.ok(res.all('set-cookie').some((c) => c.startsWith('theme=dark')), JSON.stringify(res.all('set-cookie')));
      assert.deepEqual(res.json(), { ok: true });
    });

    test('allowed traffic still works: the rest of a JSON answer is untouched, plain text passes as it is', async () => {
      const res = await s.send('/mask/json');
      assert.equal(res.status, 200, res.text);
      assert.match(res.header('content-type') ?? '', /^application\/json/);
      const doc = res.json<Personal>();
      assert.equal(doc.user['name'], 'Mei');
      assert.equal(doc.order_no, '20231201000123');
      assert.equal(doc.count, 42);

      const hello = await s.send('/mask/hello');
      assert.equal(hello.status, 200);
      assert.equal(hello.text, 'hello world\n');
      assert.match(hello.header('content-type') ?? '', /^text\/plain/);
    });
  });

  describe(`masking: ${kind}, headers: { drop: [x-user-phone] }`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind, { maskProfile: '    headers: { drop: [x-user-phone] }' });
    });
    after(() => s?.close());

    test('a header the profile drops never leaves the gateway; the answer is otherwise intact', async () => {
      const res = await s.send('/mask/cookie');
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.all('x-user-phone'), []);
      assert.ok(res.all('set-cookie').some((c) => c.startsWith('theme=dark')));
      assert.deepEqual(res.json(), { ok: true });
    });
  });
}
