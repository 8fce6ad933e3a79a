import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopback, listenersClash, parseCidr, parseListen } from '../../gateway/policy/addresses.js';
import { closest, editDistance } from '../../gateway/policy/suggest.js';

test('parseListen keeps IPv4 and localhost as written and IPv6 in canonical form', () => {
  assert.deepEqual(parseListen('0.0.0.0:8443'), { ok: true, value: { host: '0.0.0.0', port: 8443 } });
  assert.deepEqual(parseListen('localhost:1'), { ok: true, value: { host: 'localhost', port: 1 } });
  assert.deepEqual(parseListen('[0:0::1]:65535'), { ok: true, value: { host: '::1', port: 65535 } });
  assert.deepEqual(parseListen('[::]:80'), { ok: true, value: { host: '::', port: 80 } });
});

test('parseCidr writes IPv6 the RFC 5952 way', () => {
  const cases: [string, string][] = [
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1/128'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1/128'],
    ['::', '::/128'],
    ['::/0', '::/0'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fe80::/10', 'fe80::/10'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1/128'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8/128'],
  ];
  for (const [input, output] of cases) assert.deepEqual(parseCidr(input), { ok: true, value: output }, input);
  assert.equal(parseCidr('fe80::1/10').ok, false);
});

test('listenersClash: same port and an address in common', () => {
  const at = (host: string, port = 80): { host: string; port: number } => ({ host, port });
  assert.equal(listenersClash(at('0.0.0.0'), at('127.0.0.1')), true);
  assert.equal(listenersClash(at('::'), at('127.0.0.1')), true);
  assert.equal(listenersClash(at('0.0.0.0'), at('::')), true);
  assert.equal(listenersClash(at('0.0.0.0'), at('::1')), false);
  assert.equal(listenersClash(at('localhost'), at('::1')), true);
  assert.equal(listenersClash(at('127.0.0.1'), at('127.0.0.1', 81)), false);
  assert.equal(listenersClash(at('10.0.0.1'), at('10.0.0.2')), false);
});

test('isLoopback', () => {
  for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(host), true, host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '::2']) assert.equal(isLoopback(host), false, host);
});

test('editDistance counts an adjacent transposition as one edit', () => {
  assert.equal(editDistance('nmae', 'name'), 1);
  assert.equal(editDistance('upstreem', 'upstream'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('kitten', 'sitting'), 3);
});

test('closest suggests only words that are near, ignoring case and - versus _', () => {
  const keys = ['path', 'path_prefix', 'methods', 'host'];
  assert.equal(closest('pathprefix', keys), 'path_prefix');
  assert.equal(closest('path-prefix', keys), 'path_prefix');
  assert.equal(closest('Methods', keys), 'methods');
  assert.equal(closest('hots', keys), 'host');
  assert.equal(closest('prefix', keys), undefined);
  assert.equal(closest('x', keys), undefined);
});

test('parseCidr reads addresses with the gateway\'s own parser and says what is wrong', () => {
  const why = (text: string): string => {
    const parsed = parseCidr(text);
    assert.equal(parsed.ok, false, text);
    return parsed.ok ? '' : parsed.why;
  };
  assert.match(why('1.2.3.4/33'), /^has a prefix length outside 0\.\.32; expected an IP address or a CIDR block/);
  assert.match(why('::/129'), /^has a prefix length outside 0\.\.128;/);
  assert.match(why('10.0.0.0/8x'), /^has a prefix length outside 0\.\.32;/);
  assert.match(why('010.0.0.0/8'), /^holds `010\.0\.0\.0`, which is not an IP address;/);
  assert.match(why('1.2.3.4.5'), /^is not an IP address;/);
  assert.match(why('::1::2'), /^is not an IP address;/);
  assert.match(why('fe80::1%eth0'), /^is not an IP address;/);
  assert.match(why('fe80::%eth0/64'), /^holds `fe80::%eth0`, which is not an IP address;/);
  assert.match(why('10.1.2.3/8'), /^has bits set beyond the \/8 prefix; the block is 10\.0\.0\.0\/8/);
  assert.deepEqual(parseCidr('::ffff:a00:1'), { ok: true, value: '::ffff:10.0.0.1/128' });
  assert.deepEqual(parseCidr('0:0:0:0:0:ffff:c000:200/120'), { ok: true, value: '::ffff:192.0.2.0/120' });
  assert.deepEqual(parseCidr('10.0.0.0/08'), { ok: true, value: '10.0.0.0/8' });
});

test('parseListen refuses zone ids and IPv4 with leading zeros', () => {
  assert.equal(parseListen('[fe80::1%eth0]:80').ok, false);
  assert.equal(parseListen('[127.0.0.1]:80').ok, false);
  assert.equal(parseListen('127.0.0.01:80').ok, false);
  assert.deepEqual(parseListen('[::FFFF:7f00:1]:80'), { ok: true, value: { host: '::ffff:127.0.0.1', port: 80 } });
});
