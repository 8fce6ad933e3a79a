// Paths a backend folds onto a stricter route: Express routes without case and with or without a
// trailing slash, servlet containers drop `;params`, IIS drops trailing dots and spaces. A spelling
// that falls past the stricter route to the catch-all must never be served by the backend; the
// stricter route covers every case spelling instead, and what cannot be normalised is refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_KINDS } from '../helpers/backends.js';
import { assertRefused, reportOf, signedPushQuery, startStand, tokenFor, type Stand } from './setup.js';

const FORGED_PUSH = '<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o_victim]]></FromUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[forged]]></Content></xml>';

for (const kind of BACKEND_KINDS) {
  describe(`paths: ${kind}`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind);
    });
    after(() => s?.close());

    test('premise: what this backend serves for these spellings when nothing stands in front of it', async () => {
      assert.equal(reportOf(await s.direct('/api/internal')).route, 'internal');
      const upper = reportOf(await s.direct('/api/INTERNAL/y'));
      const slash = reportOf(await s.direct({ method: 'POST', target: '/wx/callback/', body: '' }));
      const param = reportOf(await s.direct('/api/internal;x/y'));
      if (kind === 'express') {
        // Express routes without case and with or without a trailing slash.
        assert.equal(upper.route, 'internal');
        assert.equal(slash.route, 'callback');
      } else {
        assert.equal(upper.route, 'api');
        assert.equal(slash.route, 'fallback');
      }
      // None of these servers drops `;params` itself: they serve the path as it is.
      assert.equal(param.path, '/api/internal;x/y');
    });

    test('case spellings of an office-only path are refused by the office-only route, never served', async () => {
      const seen = await s.during(async () => {
        for (const target of ['/api/INTERNAL/y', '/api/Internal/y', '/API/internal/y', '/Api/Internal/Y', '/api/internal/y']) {
          assertRefused(await s.send(target), 403, 'ip_not_allowed', target);
        }
      });
      assert.deepEqual(seen.map((r) => r.request_uri), []);
    });

    test('a prefix route /x/ also covers /x', async () => {
      const seen = await s.during(async () => {
        assertRefused(await s.send('/api/internal'), 403, 'ip_not_allowed');
        assertRefused(await s.send('/api/INTERNAL'), 403, 'ip_not_allowed');
      });
      assert.deepEqual(seen.map((r) => r.request_uri), []);
    });

    test('`;` path parameters, raw or %3B, are refused with path_invalid', async () => {
      const seen = await s.during(async () => {
        for (const target of ['/api/internal;x/y', '/api/internal;/y', '/api;x/internal/y', '/api/internal%3Bx/y', '/api/internal%3bx/y', '/api/me;jsessionid=1/profile', '/api/internal/y;x']) {
          assertRefused(await s.send(target), 400, 'path_invalid', target);
        }
      });
      assert.deepEqual(seen.map((r) => r.request_uri), []);
    });

    test('segments ending in a dot or a space are refused with path_invalid', async () => {
      const seen = await s.during(async () => {
        for (const target of ['/api/internal./y', '/api/internal%2E/y', '/api/internal%2e/y', '/api/internal../y', '/api/internal%20/y', '/api/internal.%20/y', '/api/internal/y.', '/api/internal/y%20']) {
          assertRefused(await s.send(target), 400, 'path_invalid', target);
        }
      });
      assert.deepEqual(seen.map((r) => r.request_uri), []);
    });

    test('case spellings of an identity_required path need the identity', async () => {
      const seen = await s.during(async () => {
        for (const target of ['/api/ME/profile', '/API/me/profile', '/api/Me/profile', '/api/me']) {
          assertRefused(await s.send(target), 401, 'identity_required', target);
        }
      });
      assert.deepEqual(seen.map((r) => r.request_uri), []);
    });

    test('case spellings share one per-user budget', async () => {
      const token = await tokenFor(`o_rate_${kind}`);
      // Through the trusted proxy from an address of its own: a new token is also counted once by
      // address (docs/policy.md, Rate limits), and this test must not share that budget.
      const auth: [string, string][] = [['Authorization', `Bearer ${token}`], ['X-Forwarded-For', '203.0.113.50']];
      const statuses: number[] = [];
      const seen = await s.during(async () => {
        for (const target of ['/api/me/a', '/api/ME/a', '/Api/Me/a', '/API/ME/A']) statuses.push((await s.send({ target, headers: auth, from: '127.0.0.2' })).status);
      });
      assert.deepEqual(statuses, [200, 200, 429, 429]);
      assert.equal(seen.length, 2);
      for (const r of seen) assert.equal(r.openid, `o_rate_${kind}`);
    });

    test('a forged push to spellings of the callback path never reaches the backend', async () => {
      const seen = await s.during(async () => {
        for (const path of ['/wx/callback/', '/WX/callback', '/wx/Callback', '/WX/CALLBACK/', '/wx/callback;x', '/wx/callback.', '/wx/callback%20']) {
          for (const query of ['', '?signature=0000&timestamp=1&nonce=1', `?${signedPushQuery()}`.replace(/signature=[0-9a-f]+/, 'signature=deadbeef')]) {
            const res = await s.send({ method: 'POST', target: `${path}${query}`, headers: [['Content-Type', 'text/xml']], body: FORGED_PUSH });
            assert.ok(res.status >= 400 && res.status < 500, `${path}${query}: ${res.status} ${res.text}`);
          }
        }
      });
      assert.deepEqual(seen.map((r) => `${r.route} ${r.request_uri}`), []);
    });

    test('allowed traffic still works: case spellings reach the stricter route, not a refusal', async () => {
      // The trusted proxy says the client is in the office: the office-only route lets it in.
      const office: [string, string][] = [['X-Forwarded-For', '198.51.100.7']];
      for (const target of ['/api/internal/report', '/api/INTERNAL/report', '/api/internal']) {
        const r = reportOf(await s.send({ target, from: '127.0.0.2', headers: office }));
        assert.equal(r.request_uri.toLowerCase().split('?')[0], target.toLowerCase(), 'the upstream gets the path as normalised');
        assert.equal(r.client_ip, '198.51.100.7');
        if (kind === 'express') assert.equal(r.route, 'internal');
      }
      const token = await tokenFor(`o_allowed_${kind}`);
      const me = reportOf(
        await s.send({ target: '/api/ME/profile', from: '127.0.0.2', headers: [['Authorization', `Bearer ${token}`], ['X-Forwarded-For', '203.0.113.60']] }),
      );
      assert.equal(me.openid, `o_allowed_${kind}`);
      if (kind === 'express') assert.equal(me.route, 'me');
    });

    test('allowed traffic still works: ordinary paths, dots inside names and `;` in the query pass unchanged', async () => {
      for (const target of ['/api/public/x', '/api/public/file.json', '/api/public/v1.2/items', '/api/public/x?a=1;b=2', '/profile?next=/a;b']) {
        const r = reportOf(await s.send(target));
        assert.equal(r.path, target.split('?')[0]);
        assert.equal(r.route, target.startsWith('/api/') ? 'api' : 'fallback');
      }
    });

    const deliversSignedPush = (paths: string[]) => async () => {
      for (const path of paths) {
        const seen = await s.during(async () => {
          const res = await s.send({ method: 'POST', target: `${path}?${signedPushQuery()}`, headers: [['Content-Type', 'text/xml']], body: FORGED_PUSH.replace('forged', 'hello') });
          assert.equal(res.status, 200, `${path}: ${res.text}`);
        });
        assert.equal(seen.length, 1);
        assert.equal(seen[0]!.callback_verified, 'signature');
      }
    };

    test('allowed traffic still works: a signed push on the callback path is delivered verified', deliversSignedPush(['/wx/callback']));

    test('a signed push on a case spelling of the callback path goes through the callback route', deliversSignedPush(['/WX/Callback', '/wx/CALLBACK']));
  });

  describe(`paths: ${kind}, server.paths.semicolons: strip`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind, { server: '  paths: { semicolons: strip }' });
    });
    after(() => s?.close());

    test('stripped parameters are matched without them: the stricter route applies, the backend gets the stripped path', async () => {
      const seen = await s.during(async () => {
        assertRefused(await s.send('/api/internal;x/y'), 403, 'ip_not_allowed');
        assertRefused(await s.send('/api/internal%3Bx/y'), 403, 'ip_not_allowed');
      });
      assert.deepEqual(seen, []);
      const r = reportOf(await s.send('/api/public;jsessionid=abc/x'));
      assert.equal(r.path, '/api/public/x');
      assert.ok(!r.request_uri.includes(';'), r.request_uri);
    });
  });

  describe(`paths: ${kind}, server.paths.semicolons: keep`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind, { server: '  paths: { semicolons: keep }' });
    });
    after(() => s?.close());

    test('parameters reach the backend as written', async () => {
      const r = reportOf(await s.send('/api/public;v=1/x'));
      assert.equal(r.path, '/api/public;v=1/x');
    });
  });
}
