// Host spellings: the policy's host-bound office route must cover every spelling of its host
// (case, trailing dot, port), a Host that is not a name or an address is refused, and the backend
// only ever sees the one normal form in X-Forwarded-Host.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_KINDS } from '../helpers/backends.js';
import { assertRefused, reportOf, startStand, type Stand } from './setup.js';

const ADMIN_SPELLINGS = ['admin.example.com', 'ADMIN.example.com', 'admin.example.com.', 'Admin.Example.COM.', 'admin.example.com:443', 'admin.example.com.:8443'];
const INVALID_HOSTS = [
  'evil.example@admin.example.com',
  'admin.example.com#frag',
  'admin%2eexample.com',
  '[admin.example.com]',
  'admin.example.com/x',
  'admin.example.com:abc',
  'admin..example.com',
  'admin.example.com\\x',
];

for (const kind of BACKEND_KINDS) {
  describe(`host: ${kind}`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind);
    });
    after(() => s?.close());

    test('every spelling of a host-bound office route is refused by it, never served by the catch-all', async () => {
      const seen = await s.during(async () => {
        for (const host of ADMIN_SPELLINGS) {
          const res = await s.send({ target: '/dashboard', headers: [['Host', host]], servername: 'admin.example.com' });
          assertRefused(res, 403, 'ip_not_allowed', `Host ${host}`);
        }
      });
      assert.deepEqual(seen.map((r) => r.forwarded_host), []);
    });

    test('a Host that is not a valid name or address is 400 and never forwarded', async () => {
      const seen = await s.during(async () => {
        for (const host of INVALID_HOSTS) assertRefused(await s.send({ target: '/dashboard', headers: [['Host', host]] }), 400, undefined, `Host ${host}`);
      });
      assert.deepEqual(seen.map((r) => r.forwarded_host), []);
    });

    // Not in the issue: RFC 9112 section 3.2 makes a request with two Host lines a 400, as other
    // programs on the way (a load balancer, a cache) may read the other one.
    test('two Host headers are 400 and never forwarded', async () => {
      const seen = await s.during(async () => {
        for (const hosts of [['localhost', 'admin.example.com'], ['admin.example.com', 'localhost']]) {
          assertRefused(await s.send({ target: '/dashboard', headers: hosts.map((h): [string, string] => ['Host', h]) }), 400, undefined, hosts.join(' + '));
        }
      });
      assert.deepEqual(seen.map((r) => r.forwarded_host), []);
    });

    const LOCAL_SPELLINGS = (port: number) => ['localhost', 'LOCALHOST', 'localhost.', `localhost:${port}`];
    const ADDRESS_HOSTS = (port: number) => ['127.0.0.1', `127.0.0.1:${port}`, '[::1]', `[::1]:${port}`];

    test('allowed traffic still works: names, addresses and the office on the host-bound route', async () => {
      for (const host of [...LOCAL_SPELLINGS(s.gateway.port), ...ADDRESS_HOSTS(s.gateway.port)]) {
        const r = reportOf(await s.send({ target: '/dashboard', headers: [['Host', host]] }));
        assert.equal(r.route, 'fallback');
        assert.equal(r.path, '/dashboard');
      }
      // From the office (through the trusted proxy), every spelling of the admin host is served.
      for (const host of ADMIN_SPELLINGS) {
        const r = reportOf(
          await s.send({ target: '/dashboard', from: '127.0.0.2', headers: [['Host', host], ['X-Forwarded-For', '198.51.100.7']], servername: 'admin.example.com' }),
        );
        assert.equal(r.client_ip, '198.51.100.7');
      }
    });

    test('the backend sees the host in one normal form: lower case, no trailing dot', async () => {
      for (const host of LOCAL_SPELLINGS(s.gateway.port)) {
        const r = reportOf(await s.send({ target: '/dashboard', headers: [['Host', host]] }));
        assert.match(r.forwarded_host ?? '', /^localhost(:\d+)?$/, `Host ${host}`);
      }
      for (const host of ADDRESS_HOSTS(s.gateway.port)) {
        const r = reportOf(await s.send({ target: '/dashboard', headers: [['Host', host]] }));
        assert.match(r.forwarded_host ?? '', /^(127\.0\.0\.1|\[::1\])(:\d+)?$/, `Host ${host}`);
      }
      for (const host of ADMIN_SPELLINGS) {
        const r = reportOf(
          await s.send({ target: '/dashboard', from: '127.0.0.2', headers: [['Host', host], ['X-Forwarded-For', '198.51.100.7']], servername: 'admin.example.com' }),
        );
        assert.match(r.forwarded_host ?? '', /^admin\.example\.com(:\d+)?$/, `Host ${host}`);
      }
    });
  });
}
