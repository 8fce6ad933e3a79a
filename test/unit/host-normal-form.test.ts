import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostOf, readHost } from '../../gateway/net/host.js';

test('every spelling of one host has one normal form: lower case, no trailing dot, port apart', () => {
  const cases: [string, string, number | undefined][] = [
    ['admin.example.com', 'admin.example.com', undefined],
    ['Admin.Example.COM', 'admin.example.com', undefined],
    ['admin.example.com.', 'admin.example.com', undefined],
    ['ADMIN.example.com.:8443', 'admin.example.com', 8443],
    ['localhost:443', 'localhost', 443],
    ['127.0.0.1:8080', '127.0.0.1', 8080],
    ['[::1]', '[::1]', undefined],
    ['[::1]:8443', '[::1]', 8443],
    ['[2001:DB8::A]:443', '[2001:db8::a]', 443],
    ['xn--fiqs8s.example', 'xn--fiqs8s.example', undefined],
    ['_svc.internal', '_svc.internal', undefined],
    ['a'.repeat(63) + '.example.com', 'a'.repeat(63) + '.example.com', undefined],
  ];
  for (const [header, host, port] of cases) {
    assert.deepEqual(readHost(header), { ok: true, host, port }, header);
    assert.equal(hostOf(header), host, header);
  }
});

test('a Host that is no name or address has no normal form', () => {
  const cases: [string, RegExp][] = [
    ['evil.com@admin.example.com', /"@"/],
    ['admin.example.com%2f', /"%"/],
    ['admin.example.com#x', /"#"/],
    ['admin example.com', /" "/],
    ['admin.example.com/x', /"\/"/],
    ['admin.example.com\\x', /"\\\\"/],
    ['a..example.com', /empty label/],
    ['.example.com', /empty label/],
    ['example.com..', /empty label/],
    ['.', /empty/],
    [':443', /empty/],
    ['[::1', /without closing/],
    ['::1', /empty/],
    ['2001:db8::1', /not a port/],
    ['[admin.example.com]', /not an IPv6 address/],
    ['[fe80::1%25eth0]', /not an IPv6 address/],
    ['[::1]x', /not a port/],
    ['[::1]]', /not a port/],
    ['admin.example.com]', /"]"/],
    ['admin[.example.com', /"\["/],
    ['example.com:', /not a port/],
    ['example.com:99999', /not a port/],
    ['example.com:80:80', /not a port/],
    ['example.com:+80', /not a port/],
    ['a'.repeat(64) + '.example.com', /longer than 63/],
    [`${'a.'.repeat(127)}aa`, /longer than 253/],
    ['exämple.com', /"ä"/],
  ];
  for (const [header, why] of cases) {
    const read = readHost(header);
    assert.equal(read.ok, false, header);
    if (!read.ok) assert.match(read.why, why, header);
    assert.equal(hostOf(header), undefined, header);
  }
  assert.equal(hostOf(undefined), undefined);
  assert.equal(hostOf(''), undefined);
});
