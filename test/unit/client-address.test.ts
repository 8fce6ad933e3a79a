import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTrustedProxies, resolveClientAddress, unmapAddress } from '../../gateway/net/client-address.js';

const trusted = compileTrustedProxies(['10.0.0.0/8', '::1/128', '2001:db8::/32']);
const none = compileTrustedProxies([]);

test('the socket peer is the client when it is not a trusted proxy, whatever X-Forwarded-For says', () => {
  assert.deepEqual(resolveClientAddress('203.0.113.9', '1.2.3.4', trusted), { client: '203.0.113.9', peer: '203.0.113.9', peerTrusted: false });
  assert.equal(resolveClientAddress('10.1.1.1', '1.2.3.4', none).client, '10.1.1.1');
});

test('behind trusted proxies the header is walked from the right to the first untrusted hop', () => {
  assert.equal(resolveClientAddress('10.0.0.2', '198.51.100.7', trusted).client, '198.51.100.7');
  // The leftmost entry is whatever the client wrote; it is never reached past an untrusted hop.
  assert.equal(resolveClientAddress('10.0.0.2', '6.6.6.6, 198.51.100.7, 10.0.0.3', trusted).client, '198.51.100.7');
  assert.equal(resolveClientAddress('::1', ['6.6.6.6', '198.51.100.7'], trusted).client, '198.51.100.7');
  assert.equal(resolveClientAddress('10.0.0.2', undefined, trusted).client, '10.0.0.2');
});

test('a malformed hop stops the walk and is never taken as the client', () => {
  assert.equal(resolveClientAddress('10.0.0.2', '198.51.100.7, not-an-ip, 10.0.0.3', trusted).client, '10.0.0.3');
  assert.equal(resolveClientAddress('10.0.0.2', 'garbage', trusted).client, '10.0.0.2');
});

test('IPv4-mapped IPv6 is the IPv4 address, for the peer and for hops', () => {
  assert.equal(unmapAddress('::ffff:10.0.0.2'), '10.0.0.2');
  assert.equal(unmapAddress('::FFFF:1.2.3.4'), '1.2.3.4');
  assert.equal(unmapAddress('2001:db8::1'), '2001:db8::1');
  assert.deepEqual(resolveClientAddress('::ffff:10.0.0.2', '::ffff:198.51.100.7', trusted), { client: '198.51.100.7', peer: '10.0.0.2', peerTrusted: true });
  assert.equal(resolveClientAddress('::ffff:203.0.113.1', '1.1.1.1', trusted).peerTrusted, false);
});

test('IPv6 ranges are trusted by prefix', () => {
  assert.equal(trusted.trusts('2001:db8:1::5'), true);
  assert.equal(trusted.trusts('2001:db9::5'), false);
  assert.equal(trusted.trusts('nonsense'), false);
});

test('a trusted proxy written in ::ffff: form trusts the IPv4 peer it names', () => {
  const mapped = compileTrustedProxies(['::ffff:10.0.0.2/128', '::ffff:192.168.0.0/112']);
  assert.equal(mapped.trusts('10.0.0.2'), true);
  assert.equal(mapped.trusts('192.168.7.9'), true);
  assert.equal(mapped.trusts('10.0.0.3'), false);
  assert.equal(resolveClientAddress('::ffff:10.0.0.2', '198.51.100.7', mapped).client, '198.51.100.7');
});

test('hops are read in place: spaces and tabs around them, several header lines, empty hops', () => {
  const lb = compileTrustedProxies(['127.0.0.0/8', '10.0.0.0/8', '::1/128']);
  assert.deepEqual(resolveClientAddress('::ffff:127.0.0.1', '203.0.113.7, 10.1.2.3, 10.4.5.6', lb), { client: '203.0.113.7', peer: '127.0.0.1', peerTrusted: true });
  assert.equal(resolveClientAddress('127.0.0.1', '6.6.6.6,203.0.113.7 ,\t10.1.2.3\t', lb).client, '203.0.113.7');
  assert.equal(resolveClientAddress('127.0.0.1', ['6.6.6.6, 203.0.113.7', '10.1.2.3'], lb).client, '203.0.113.7');
  // Every hop trusted: the leftmost is the client.
  assert.equal(resolveClientAddress('127.0.0.1', '10.9.9.9, 10.1.2.3', lb).client, '10.9.9.9');
  assert.equal(resolveClientAddress('127.0.0.1', '203.0.113.7, , 10.1.2.3', lb).client, '10.1.2.3');
  assert.equal(resolveClientAddress('127.0.0.1', ',10.1.2.3', lb).client, '10.1.2.3');
  assert.equal(resolveClientAddress('127.0.0.1', '', lb).client, '127.0.0.1');
  assert.equal(resolveClientAddress('127.0.0.1', '203.0.113.7, 10.1.2.3 10.4.5.6', lb).client, '127.0.0.1');
});

test('a mapped hop in any spelling is the IPv4 client; a zone id or a leading zero is malformed', () => {
  assert.equal(resolveClientAddress('10.0.0.2', '::ffff:c633:6407', trusted).client, '198.51.100.7');
  assert.equal(resolveClientAddress('10.0.0.2', '6.6.6.6, 0:0:0:0:0:ffff:a00:9', trusted).client, '6.6.6.6');
  assert.equal(resolveClientAddress('10.0.0.2', '198.51.100.7, fe80::1%eth0', trusted).client, '10.0.0.2');
  assert.equal(resolveClientAddress('10.0.0.2', '198.51.100.7, 010.0.0.3', trusted).client, '10.0.0.2');
  assert.equal(resolveClientAddress('10.0.0.2', '2001:DB8::7', trusted).client, '2001:DB8::7');
  assert.equal(unmapAddress('::ffff:a00:2'), '10.0.0.2');
  assert.equal(unmapAddress('not-an-ip'), 'not-an-ip');
  assert.equal(unmapAddress('10.0.0.2'), '10.0.0.2');
  assert.deepEqual(resolveClientAddress(undefined, '1.2.3.4', trusted), { client: '', peer: '', peerTrusted: false });
});

test('an IPv6 block below /96 trusts no IPv4 peer, even one that spans the mapped block', () => {
  const v6 = compileTrustedProxies(['::/0']);
  assert.equal(v6.trusts('2001:db8::1'), true);
  assert.equal(v6.trusts('10.0.0.2'), false);
  assert.equal(resolveClientAddress('::ffff:10.0.0.2', '198.51.100.7', v6).peerTrusted, false);
  assert.equal(none.empty, true);
  assert.equal(v6.empty, false);
});
