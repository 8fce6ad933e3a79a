import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileIpAllow } from '../../gateway/guards/ip-allow.js';
import { ipv4ToNumber } from '../../gateway/net/cidr.js';
import { compileTrustedProxies, resolveClientAddress } from '../../gateway/net/client-address.js';

const office = compileIpAllow({ any: false, cidrs: ['203.0.113.0/24', '198.51.100.7', '10.0.0.0/8', '2001:db8:1::/48', '::1/128'] }, ['10.66.0.0/16', '2001:db8:1:bad::/64']);

test('allowed and denied addresses against an allow list with carve-outs', () => {
  const cases: [string, boolean][] = [
    ['203.0.113.0', true],
    ['203.0.113.255', true],
    ['203.0.114.0', false],
    ['198.51.100.7', true],
    ['198.51.100.8', false],
    ['10.1.2.3', true],
    ['10.66.1.1', false], // carved out by deny
    ['10.67.0.0', true],
    ['11.0.0.0', false],
    ['2001:db8:1::5', true],
    ['2001:DB8:1:0::5', true],
    ['2001:db8:1:bad::1', false], // carved out by deny
    ['2001:db8:2::1', false],
    ['::1', true],
    ['::2', false],
  ];
  for (const [address, allowed] of cases) assert.equal(office.allows(address), allowed, address);
});

test('what is not an address is refused, including spellings that other parsers read as one', () => {
  for (const address of ['', 'localhost', '10.1.2', '10.1.2.3.4', '010.1.2.3', '10.01.2.3', '0x0a.1.2.3', '10.1.2.256', ' 10.1.2.3', '10.1.2.3 ', '10.1.2.3/8', '10..2.3', '203.0.113.1,6.6.6.6']) {
    assert.equal(office.allows(address), false, JSON.stringify(address));
  }
  assert.equal(ipv4ToNumber('255.255.255.255'), 2 ** 32 - 1);
  assert.equal(ipv4ToNumber('0.0.0.0'), 0);
});

test('IPv4-mapped IPv6 spellings are the IPv4 address, for allow and for deny', () => {
  for (const mapped of ['::ffff:10.1.2.3', '::FFFF:a01:203', '0:0:0:0:0:ffff:0a01:0203']) assert.equal(office.allows(mapped), true, mapped);
  for (const mapped of ['::ffff:10.66.1.1', '::ffff:a42:101', '::ffff:11.0.0.0']) assert.equal(office.allows(mapped), false, mapped);
  const denyOnly = compileIpAllow({ any: true }, ['6.6.6.0/24']);
  for (const a of ['6.6.6.6', '::ffff:6.6.6.6', '::ffff:606:606']) assert.equal(denyOnly.allows(a), false, a);
  assert.equal(denyOnly.allows('7.7.7.7'), true);
  assert.equal(denyOnly.allows('not-an-ip'), false, 'a deny list is only meaningful for addresses');
});

test('`any` without deny admits every request without looking', () => {
  const any = compileIpAllow({ any: true }, []);
  for (const a of ['1.2.3.4', '::1', '']) assert.equal(any.allows(a), true);
  assert.equal(compileIpAllow({ any: false, cidrs: [] }, []).allows('1.2.3.4'), false, 'an empty list admits nobody');
});

test('overlapping and adjacent CIDRs merge without losing or adding addresses', () => {
  const list = compileIpAllow({ any: false, cidrs: ['192.168.0.0/24', '192.168.0.128/25', '192.168.1.0/24', '192.168.3.0/24', '0.0.0.0/32'] }, []);
  const cases: [string, boolean][] = [
    ['192.168.0.0', true], ['192.168.1.255', true], ['192.168.2.0', false], ['192.168.3.7', true], ['192.168.4.0', false],
    ['0.0.0.0', true], ['0.0.0.1', false], ['192.167.255.255', false],
  ];
  for (const [a, allowed] of cases) assert.equal(list.allows(a), allowed, a);
  const everything = compileIpAllow({ any: false, cidrs: ['0.0.0.0/0'] }, []);
  assert.equal(everything.allows('255.255.255.255'), true);
  assert.equal(everything.allows('::2'), false, 'an IPv4 /0 says nothing about IPv6');
});

test('a 1,000-CIDR list answers correctly at its edges and between its ranges', () => {
  const cidrs: string[] = [];
  for (let i = 0; i < 1000; i++) cidrs.push(`${20 + (i >> 8)}.${i & 255}.${(i * 7) & 255}.0/24`);
  const list = compileIpAllow({ any: false, cidrs }, []);
  for (let i = 0; i < 1000; i++) {
    const net = `${20 + (i >> 8)}.${i & 255}.${(i * 7) & 255}`;
    assert.equal(list.allows(`${net}.0`), true, net);
    assert.equal(list.allows(`${net}.255`), true, net);
    const next = `${20 + (i >> 8)}.${i & 255}.${((i * 7) & 255) ^ 1}.9`;
    assert.equal(list.allows(next), false, next);
  }
  assert.equal(list.allows('127.0.0.1'), false);
});

test('a spoofed X-Forwarded-For from an untrusted peer is not the address the guard sees', () => {
  const trusted = compileTrustedProxies(['10.9.0.0/16']);
  const lan = compileIpAllow({ any: false, cidrs: ['192.168.0.0/16'] }, []);
  const spoofed = resolveClientAddress('::ffff:198.51.100.1', '192.168.1.1', trusted);
  assert.equal(lan.allows(spoofed.client), false);
  const proxied = resolveClientAddress('::ffff:10.9.0.1', '6.6.6.6, 192.168.1.1', trusted);
  assert.equal(lan.allows(proxied.client), true);
});

test('malformed CIDRs are refused when compiling, not at request time', () => {
  assert.throws(() => compileIpAllow({ any: false, cidrs: ['10.0.0.0/33'] }, []));
  assert.throws(() => compileIpAllow({ any: false, cidrs: ['banana/8'] }, []));
  assert.throws(() => compileIpAllow({ any: true }, ['::/129']));
});

test('zone ids and other near-addresses are refused even where any address would pass', () => {
  const denyOnly = compileIpAllow({ any: true }, ['6.6.6.0/24']);
  for (const a of ['fe80::1%eth0', '::ffff:7.7.7.7%1', '[::1]', '::1::2', '7.7.7.07']) {
    assert.equal(denyOnly.allows(a), false, a);
    assert.equal(office.allows(a), false, a);
  }
  assert.equal(denyOnly.allows('fe80::1'), true);
});

test('an IPv6 allow or deny says nothing about IPv4 clients, in any spelling', () => {
  const v6Only = compileIpAllow({ any: false, cidrs: ['::/0'] }, []);
  assert.equal(v6Only.allows('2001:db8::1'), true);
  for (const a of ['1.2.3.4', '::ffff:1.2.3.4', '::ffff:102:304']) assert.equal(v6Only.allows(a), false, a);
  const denyV6 = compileIpAllow({ any: true }, ['::/0']);
  assert.equal(denyV6.allows('::ffff:1.2.3.4'), true);
  assert.equal(denyV6.allows('::1'), false);
});

test('a 1,000-CIDR IPv6 list answers correctly at its edges and between its ranges', () => {
  const cidrs = Array.from({ length: 1000 }, (_, i) => `2001:db8:${i.toString(16)}::/48`).filter((_, i) => i % 2 === 0);
  const list = compileIpAllow({ any: false, cidrs }, ['2001:db8:64:bad::/64']);
  for (let i = 0; i < 1000; i++) {
    const net = `2001:db8:${i.toString(16)}`;
    assert.equal(list.allows(`${net}::`), i % 2 === 0, net);
    assert.equal(list.allows(`${net}:ffff:ffff:ffff:ffff:ffff`), i % 2 === 0, net);
  }
  assert.equal(list.allows('2001:db8:64:bad::1'), false);
  assert.equal(list.allows('2001:db8:64:bae::1'), true);
});
