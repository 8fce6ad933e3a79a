// Methods that fall through: a route with `methods: [GET]` must own its paths, so HEAD (which
// most frameworks serve with the GET handler) is judged as GET, and every other method gets 405
// from it instead of reaching the catch-all and the backend's handlers for them. TRACE and CONNECT
// are refused everywhere.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_KINDS } from '../helpers/backends.js';
import { assertRefused, reportOf, startStand, type Stand } from './setup.js';
import type { WireAnswer } from './wire.js';

for (const kind of BACKEND_KINDS) {
  describe(`methods: ${kind}`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind);
    });
    after(() => s?.close());

    test('premise: this backend runs HEAD and DELETE on the reports paths when nothing stands in front of it', async () => {
      const seen = await s.during(async () => {
        for (const method of ['HEAD', 'DELETE']) assert.equal((await s.direct({ method, target: '/reports/q3' })).status, 200, method);
      });
      assert.deepEqual(seen.map((r) => `${r.raw_method} ${r.route}`), ['HEAD reports', 'DELETE reports']);
    });

    test('HEAD on a GET-only office route is judged as GET: refused, never run', async () => {
      const seen = await s.during(async () => {
        for (const target of ['/reports/q3', '/REPORTS/q3', '/reports']) {
          const res = await s.send({ method: 'HEAD', target });
          assert.equal(res.status, 403, `HEAD ${target}: ${res.status}`);
        }
        assertRefused(await s.send('/reports/q3'), 403, 'ip_not_allowed');
      });
      assert.deepEqual(seen.map((r) => `${r.raw_method} ${r.route}`), []);
    });

    test('other methods on its paths get 405 from it instead of the catch-all', async () => {
      const seen = await s.during(async () => {
        for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND']) {
          const res = await s.send({ method, target: '/reports/q3', headers: [['Content-Type', 'application/json']], body: '{}' });
          assertRefused(res, 405, 'method_not_allowed', method);
          assert.match(res.header('allow') ?? '', /\bGET\b/, `${method}: the 405 names what the route takes`);
        }
        // Overriding the method in a header does not make a POST acceptable either.
        const res = await s.send({ method: 'POST', target: '/reports/q3', headers: [['X-HTTP-Method-Override', 'GET']], body: '' });
        assertRefused(res, 405, 'method_not_allowed');
      });
      assert.deepEqual(seen.map((r) => `${r.raw_method} ${r.route}`), []);
    });

    test('paths owned by two method-bound routes give 405 for a method neither lists', async () => {
      const seen = await s.during(async () => {
        for (const method of ['PUT', 'DELETE', 'PATCH']) assertRefused(await s.send({ method, target: '/pub/x', body: '' }), 405, 'method_not_allowed', method);
      });
      assert.deepEqual(seen.map((r) => `${r.raw_method} ${r.route}`), []);
    });

    test('TRACE and CONNECT are refused everywhere, cookies never echoed', async () => {
      const seen = await s.during(async () => {
        for (const target of ['/profile', '/pub/x', '/api/public/x', '/reports/q3', '*']) {
          const res = await s.send({ method: 'TRACE', target, headers: [['Cookie', 'sid=SECRET-COOKIE'], ['Max-Forwards', '0']] });
          assert.ok(res.status >= 400 && res.status < 500, `TRACE ${target}: ${res.status}`);
          assert.ok(!res.text.includes('SECRET-COOKIE'), `TRACE ${target} echoed the cookie`);
        }
        // CONNECT: an error answer or a closed connection, never a tunnel.
        const connect = await s.send({ method: 'CONNECT', target: `127.0.0.1:${s.backend.port}`, headers: [['Host', `127.0.0.1:${s.backend.port}`]] }).catch((err: Error) => err);
        if (!(connect instanceof Error)) assert.ok((connect as WireAnswer).status >= 400, `CONNECT: ${(connect as WireAnswer).status}`);
      });
      assert.deepEqual(seen.map((r) => `${r.raw_method} ${r.route}`), []);
    });

    test('allowed traffic still works: GET and HEAD on a GET route, POST on the POST route of the same paths', async () => {
      const got = reportOf(await s.send('/pub/x'));
      assert.equal(got.method, 'GET');
      assert.equal(got.path, '/pub/x');

      const seen = await s.during(async () => {
        const head = await s.send({ method: 'HEAD', target: '/pub/x' });
        assert.equal(head.status, 200);
        assert.equal(head.body.length, 0);
      });
      assert.deepEqual(seen.map((r) => r.raw_method), ['HEAD']);

      const posted = reportOf(await s.send({ method: 'POST', target: '/pub/x', headers: [['Content-Type', 'application/json']], body: '{"a":1}' }));
      assert.equal(posted.method, 'POST');
      assert.equal(posted.body, '{"a":1}');

      // On the catch-all every ordinary method still passes.
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        const r = reportOf(await s.send({ method, target: '/orders/7', body: method === 'GET' ? undefined : '' }));
        assert.equal(r.method, method);
      }
    });
  });
}
