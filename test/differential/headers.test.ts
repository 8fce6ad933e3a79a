// Header names a backend folds: CGI-style servers (PHP, wsgiref, gunicorn) map `X_WX_OpenID` and
// `X-WX-OpenID` both to HTTP_X_WX_OPENID, so a gateway that strips only the hyphenated spelling
// lets a client name its own openid. And client claims of address, host, URL and method that
// common apps act on. Each backend reports what it read; it must only ever read the gateway's word.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_KINDS } from '../helpers/backends.js';
import { repoRoot } from '../helpers/process.js';
import { assertRefused, reportOf, startStand, tokenFor, type Stand } from './setup.js';

const CLAIMS = JSON.parse(readFileSync(join(repoRoot, 'test/backends/claims.json'), 'utf8')) as string[];
/** The claims the issue lists by name; the rest of claims.json is their kin. */
const LISTED = [
  'true-client-ip', 'x-client-ip', 'cf-connecting-ip', 'x-cluster-client-ip', 'x-original-forwarded-for',
  'x-forwarded-server', 'x-forwarded-scheme', 'x-host', 'x-original-host', 'x-original-url', 'x-rewrite-url',
  'x-http-method-override',
];
const KIN = CLAIMS.filter((c) => !LISTED.includes(c));

/** A value each claim header would carry in an attack. */
function claimValue(name: string): string {
  if (/url/.test(name)) return '/api/internal/secrets';
  if (/method/.test(name)) return 'DELETE';
  if (/host|server/.test(name)) return 'admin.example.com';
  if (/scheme|proto|ssl|https/.test(name)) return 'https';
  if (name === 'forwarded') return 'for=198.51.100.7;host=admin.example.com;proto=https';
  if (name === 'x-forwarded-port') return '443';
  if (name === 'x-forwarded-prefix') return '/api/internal';
  return '198.51.100.7';
}

/** Every spelling that folds to HTTP_X_WX_OPENID on a CGI-style server, hyphenated ones included. */
const OPENID_SPELLINGS = ['X_WX_OpenID', 'x_wx_openid', 'X-WX_OpenID', 'X_WX-OPENID', 'X-Wx-Openid'];

for (const kind of BACKEND_KINDS) {
  describe(`headers: ${kind}`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind);
    });
    after(() => s?.close());

    test('premise: what this backend makes of these headers when nothing stands in front of it', async () => {
      const folded = reportOf(await s.direct({ target: '/profile', headers: [['X_WX_OpenID', 'o_victim']] }));
      if (kind === 'express') assert.equal(folded.openid, null, 'Node keeps header names as sent');
      else assert.equal(folded.openid, 'o_victim', 'a CGI-style server folds `_` and `-` into one name');
      const claimed = reportOf(
        await s.direct({
          method: 'POST',
          target: '/orders',
          headers: [['X-HTTP-Method-Override', 'DELETE'], ['X-Original-URL', '/api/internal/secrets'], ['True-Client-IP', '198.51.100.7']],
          body: '',
        }),
      );
      assert.equal(claimed.method, 'DELETE');
      assert.equal(claimed.route, 'internal');
      assert.equal(claimed.client_ip, '198.51.100.7');
    });

    test('a client without a token cannot name an openid in any spelling the backend folds', async () => {
      for (const name of OPENID_SPELLINGS) {
        const seen = await s.during(async () => {
          const res = await s.send({ target: '/profile', headers: [[name, 'o_victim']] });
          assert.equal(res.status, 200, res.text);
        });
        assert.equal(seen.length, 1);
        assert.equal(seen[0]!.openid, null, `${name}: the backend read an openid the client chose`);
        assert.ok(!JSON.stringify(seen[0]!.headers).includes('o_victim'), `${name} reached the backend`);
      }
    });

    test('with a valid token the backend reads exactly the verified openid, never a client copy beside it', async () => {
      const token = await tokenFor('o_alice');
      for (const name of OPENID_SPELLINGS) {
        for (const target of ['/profile', '/api/me/profile']) {
          const seen = await s.during(async () => {
            const res = await s.send({ target, headers: [[name, 'o_victim'], ['Authorization', `Bearer ${token}`]] });
            if (res.status === 429) return; // the me route's per-user budget; the catch-all still proves the point
            assert.equal(res.status, 200, res.text);
          });
          for (const r of seen) assert.equal(r.openid, 'o_alice', `${name} on ${target}: the backend read ${r.openid}`);
        }
      }
    });

    test('callback verification and forwarding headers cannot be forged in underscore spellings', async () => {
      const seen = await s.during(async () => {
        const res = await s.send({
          target: '/notify',
          method: 'POST',
          headers: [
            ['X_WX_Callback_Verified', 'decrypted'],
            ['X_WeChatPay_Verified', 'decrypted'],
            ['X_Forwarded_For', '198.51.100.7'],
            ['X_Forwarded_Host', 'admin.example.com'],
            ['X_Request_Id', 'forged-id'],
            ['Content-Type', 'text/xml'],
          ],
          body: '<xml><MsgType>text</MsgType></xml>',
        });
        assert.equal(res.status, 200, res.text);
      });
      assert.equal(seen.length, 1);
      const r = seen[0]!;
      assert.equal(r.callback_verified, null);
      assert.equal(r.client_ip, '127.0.0.1', 'the backend acted on a client-chosen address');
      const all = JSON.stringify(r.headers);
      for (const forged of ['decrypted', '198.51.100.7', 'admin.example.com', 'forged-id']) assert.ok(!all.includes(forged), `${forged} reached the backend: ${all}`);
    });

    test('a dropped underscore header is logged with its name', async () => {
      const from = s.gateway.logText().length;
      const res = await s.send({ target: '/profile', headers: [['X_Legacy_Flag', '1']] });
      assert.equal(res.status, 200, res.text);
      assert.match(s.gateway.logText().slice(from), /x_legacy_flag/i);
    });

    test('allowed traffic still works: normal requests with normal headers reach the backend as before', async () => {
      const token = await tokenFor('o_normal');
      const plain = reportOf(await s.send({ target: '/profile?tab=orders', headers: [['X-App-Version', '7.0.1'], ['Accept', 'application/json']] }));
      assert.equal(plain.route, 'fallback');
      assert.equal(plain.path, '/profile');
      assert.equal(plain.client_ip, '127.0.0.1');
      assert.ok(JSON.stringify(plain.headers).includes('7.0.1'), 'an ordinary header did not arrive');

      // Through the trusted proxy from an address of its own, so the new token's one count by
      // address (docs/policy.md, Rate limits) does not share the budget of the test above.
      const me = reportOf(
        await s.send({ target: '/api/me/profile', from: '127.0.0.2', headers: [['Authorization', `Bearer ${token}`], ['X-Forwarded-For', '203.0.113.70'], ['X-App-Version', '7.0.1']] }),
      );
      assert.equal(me.route, 'me');
      assert.equal(me.openid, 'o_normal');
      assert.equal(me.client_ip, '203.0.113.70');

      const posted = reportOf(await s.send({ target: '/orders', method: 'POST', headers: [['Content-Type', 'application/json']], body: '{"item":1}' }));
      assert.equal(posted.method, 'POST');
      assert.equal(posted.body, '{"item":1}');
    });

    test('an underscore header does not break a normal request: it is answered, without that header', async () => {
      const token = await tokenFor('o_normal');
      const r = reportOf(
        await s.send({ target: '/api/me/profile', from: '127.0.0.2', headers: [['Authorization', `Bearer ${token}`], ['X-Forwarded-For', '203.0.113.70'], ['X_Custom_Flag', 'UNDERSCORE-VALUE'], ['X-App-Version', '7.0.1']] }),
      );
      assert.equal(r.route, 'me');
      assert.equal(r.openid, 'o_normal');
      assert.ok(JSON.stringify(r.headers).includes('7.0.1'));
      assert.ok(!JSON.stringify(r.headers).includes('UNDERSCORE-VALUE'), 'an underscore header is dropped by default');
    });

    test("the issue's client claims of address, host, URL and method never reach the backend from an untrusted peer", async () => {
      const seen = await s.during(async () => {
        const res = await s.send({ target: '/orders', method: 'POST', headers: LISTED.map((n) => [n, claimValue(n)]), body: '' });
        assert.equal(res.status, 200, res.text);
      });
      assert.equal(seen.length, 1);
      const r = seen[0]!;
      for (const name of LISTED) assert.equal(r.claims[name], null, `${name} reached the backend`);
      assert.equal(r.client_ip, '127.0.0.1');
      assert.equal(r.method, 'POST', 'the backend ran the method the client claimed');
      assert.equal(r.path, '/orders', 'the backend routed on the URL the client claimed');
      assert.equal(r.route, 'fallback');
      assert.notEqual(r.host, 'admin.example.com');
    });

    test('their kin (Client-IP, X-Real-IP, Forwarded, X-HTTP-Method, ...) never reach the backend from an untrusted peer', async () => {
      const seen = await s.during(async () => {
        const res = await s.send({ target: '/orders', method: 'POST', headers: KIN.map((n) => [n, claimValue(n)]), body: '' });
        assert.equal(res.status, 200, res.text);
      });
      const r = seen[0]!;
      for (const name of KIN) assert.equal(r.claims[name], null, `${name} reached the backend`);
      assert.equal(r.client_ip, '127.0.0.1');
      assert.equal(r.method, 'POST');
    });

    test('claims in underscore spellings are removed too', async () => {
      const seen = await s.during(async () => {
        const res = await s.send({
          target: '/orders',
          method: 'POST',
          headers: [['True_Client_IP', '198.51.100.7'], ['X_Original_URL', '/api/internal/secrets'], ['X_HTTP_Method_Override', 'DELETE'], ['Client_IP', '198.51.100.7']],
          body: '',
        });
        assert.equal(res.status, 200, res.text);
      });
      const r = seen[0]!;
      assert.equal(r.client_ip, '127.0.0.1');
      assert.equal(r.method, 'POST');
      assert.equal(r.route, 'fallback');
      for (const name of LISTED) assert.equal(r.claims[name], null, `${name} reached the backend`);
    });

    // Not in the issue: PHP registers $_SERVER names the way it registers form fields, turning `.`
    // into `_` as well, so `X.WX.OpenID` is HTTP_X_WX_OPENID there. A valid header name to Node.
    test('header names with `.` are removed where they fold to a gateway-owned header or a claim', async () => {
      const premise = reportOf(await s.direct({ target: '/profile', headers: [['X.WX.OpenID', 'o_victim']] }));
      assert.equal(premise.openid, kind === 'php' ? 'o_victim' : null, 'what the backend itself makes of a dotted name');

      const token = await tokenFor('o_alice');
      for (const name of ['X.WX.OpenID', 'X.WX_OpenID', 'X-WX.OpenID']) {
        const anonymous = reportOf(await s.send({ target: '/profile', headers: [[name, 'o_victim']] }));
        assert.equal(anonymous.openid, null, `${name}: the backend read an openid the client chose`);
        const verified = reportOf(await s.send({ target: '/profile', headers: [['Authorization', `Bearer ${token}`], [name, 'o_victim']] }));
        assert.equal(verified.openid, 'o_alice', `${name}: the backend read ${verified.openid}`);
      }
      const claims = reportOf(await s.send({ target: '/orders', headers: [['X.Forwarded.For', '198.51.100.7'], ['True.Client.IP', '198.51.100.7'], ['X.Original.URL', '/api/internal/secrets']] }));
      assert.equal(claims.client_ip, '127.0.0.1');
      assert.equal(claims.route, 'fallback');
    });

    test('a trusted proxy still only passes claims the policy names: unnamed ones are removed, its X-Forwarded-For counts', async () => {
      const seen = await s.during(async () => {
        const res = await s.send({
          target: '/orders',
          method: 'POST',
          from: '127.0.0.2',
          headers: [['X-Forwarded-For', '203.0.113.9'], ...LISTED.map((n): [string, string] => [n, claimValue(n)])],
          body: '',
        });
        assert.equal(res.status, 200, res.text);
      });
      const r = seen[0]!;
      for (const name of LISTED) assert.equal(r.claims[name], null, `${name} reached the backend from a trusted proxy the policy did not name it for`);
      assert.equal(r.client_ip, '203.0.113.9');
      assert.equal(r.method, 'POST');
    });
  });

  describe(`headers: ${kind}, server.headers.underscores: reject`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind, { server: '  headers: { underscores: reject }' });
    });
    after(() => s?.close());

    test('a request with an underscore header is refused before the backend; one without passes', async () => {
      const seen = await s.during(async () => {
        assertRefused(await s.send({ target: '/profile', headers: [['X_WX_OpenID', 'o_victim']] }), 400);
        assertRefused(await s.send({ target: '/profile', headers: [['X_Custom_Flag', '1']] }), 400);
      });
      assert.deepEqual(seen, []);
      assert.equal(reportOf(await s.send({ target: '/profile', headers: [['X-Custom-Flag', '1']] })).route, 'fallback');
    });
  });

  describe(`headers: ${kind}, server.headers.underscores: allow`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind, { server: '  headers: { underscores: allow }' });
    });
    after(() => s?.close());

    test('other underscore headers pass, but no spelling of a gateway-owned header does', async () => {
      const token = await tokenFor('o_alice');
      const r = reportOf(
        await s.send({
          target: '/profile',
          headers: [['X_Custom_Flag', 'UNDERSCORE-VALUE'], ['X_WX_OpenID', 'o_victim'], ['X_Forwarded_For', '198.51.100.7'], ['True_Client_IP', '198.51.100.7'], ['Authorization', `Bearer ${token}`]],
        }),
      );
      assert.ok(JSON.stringify(r.headers).includes('UNDERSCORE-VALUE'), 'underscores: allow must pass other underscore headers');
      assert.equal(r.openid, 'o_alice');
      assert.equal(r.client_ip, '127.0.0.1');
      assert.ok(!JSON.stringify(r.headers).includes('198.51.100.7'));
    });
  });
}
