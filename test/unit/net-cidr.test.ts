import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import { CidrSet, formatIpv4, ipv4ToNumber, isIpv4Words, parseIp, parsePrefix } from '../../gateway/net/cidr.js';

function words(text: string): number[] | undefined {
  const out = new Uint32Array(4);
  return parseIp(text, out) === 0 ? undefined : [...out];
}

const MALFORMED = [
  '', ' ', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '1.2.3.00', '1.2.3.256', '1.2.3.-1', '1..3.4', '.1.2.3', '1.2.3.4.',
  '0x1.2.3.4', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4/32', '[::1]', '::1::2', ':::', ':1', '1:', '1::2:', ':1::2', '1:2:3:4:5:6:7:8:9',
  '1:2:3:4::5:6:7:8', '12345::', 'g::', '::ffff:01.2.3.4', '::ffff:1.2.3', '::1.2.3.4:5', '1:2:3:4:5:6:7:1.2.3.4', '1.2.3.4::',
  'fe80::1%eth0', 'fe80::1%1', '::ffff:1.2.3.4%eth0', '::1 ', 'localhost', '1:2:3:4:5:6:7', '1:2:3:4:5:6:1.2.3.4:5',
];

test('parseIp reads every spelling into the same four words, IPv4 as ::ffff:a.b.c.d', () => {
  const mapped10 = [0, 0, 0xffff, 0x0a000001];
  const cases: [string, number[], 4 | 6][] = [
    ['10.0.0.1', mapped10, 4],
    ['::ffff:10.0.0.1', mapped10, 6],
    ['::FFFF:a00:1', mapped10, 6],
    ['0:0:0:0:0:ffff:0a00:0001', mapped10, 6],
    ['0000:0000:0000:0000:0000:FFFF:10.0.0.1', mapped10, 6],
    ['::0:ffff:10.0.0.1', mapped10, 6],
    ['::', [0, 0, 0, 0], 6],
    ['::1', [0, 0, 0, 1], 6],
    ['1::', [0x10000, 0, 0, 0], 6],
    ['2001:DB8::8:800:200C:417A', [0x20010db8, 0, 0x80800, 0x200c417a], 6],
    ['1:2:3:4:5:6:7::', [0x10002, 0x30004, 0x50006, 0x70000], 6],
    ['::2:3:4:5:6:7:8', [0x2, 0x30004, 0x50006, 0x70008], 6],
    ['1:2:3:4:5:6:1.2.3.4', [0x10002, 0x30004, 0x50006, 0x01020304], 6],
    ['::1.2.3.4', [0, 0, 0, 0x01020304], 6],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], 6],
    ['255.255.255.255', [0, 0, 0xffff, 0xffffffff], 4],
    ['0.0.0.0', [0, 0, 0xffff, 0], 4],
  ];
  for (const [text, expected, family] of cases) {
    const out = new Uint32Array(4);
    assert.equal(parseIp(text, out), family, text);
    assert.deepEqual([...out], expected, text);
  }
  for (const text of MALFORMED) assert.equal(words(text), undefined, JSON.stringify(text));
  // A range inside a longer text, as X-Forwarded-For hops are read.
  const out = new Uint32Array(4);
  assert.equal(parseIp('9.9.9.9, ::ffff:a00:1 ,x', out, 9, 21), 6);
  assert.deepEqual([...out], mapped10);
  assert.equal(isIpv4Words(out), true);
  assert.equal(parseIp('::1', out), 6);
  assert.equal(isIpv4Words(out), false);
});

test('ipv4ToNumber, formatIpv4 and parsePrefix', () => {
  assert.equal(ipv4ToNumber('255.255.255.255'), 2 ** 32 - 1);
  assert.equal(ipv4ToNumber('10.0.0.1'), 0x0a000001);
  assert.equal(ipv4ToNumber('::ffff:10.0.0.1'), -1);
  assert.equal(formatIpv4(0xc0000201), '192.0.2.1');
  assert.equal(formatIpv4(2 ** 32 - 1), '255.255.255.255');
  assert.equal(parsePrefix('0', 32), 0);
  assert.equal(parsePrefix('32', 32), 32);
  assert.equal(parsePrefix('33', 32), -1);
  assert.equal(parsePrefix('128', 128), 128);
  for (const bad of ['', '-1', '+8', ' 8', '8 ', '1e1', '0x8', '1000']) assert.equal(parsePrefix(bad, 128), -1, bad);
});

/** A deterministic generator, so that a failure names a reproducible case. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

test('parseIp takes exactly what net.isIP takes, zone ids aside, on generated spellings', () => {
  const next = random(7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const part = (): string => pick(['0', '1', '00', '01', '9', '10', '99', '100', '199', '255', '256', '300', '1000', '', 'a']);
  const hex = (): string => pick(['0', '1', 'f', 'F', 'ff', 'ffff', 'FFFF', '0db8', '00000', '12345', 'g', '', 'abc', 'c0a8']);
  let valid = 0;
  for (let n = 0; n < 4000; n++) {
    let text: string;
    if (next() < 0.3) {
      text = Array.from({ length: pick([3, 4, 4, 4, 5]) }, part).join('.');
    } else {
      const groups = Array.from({ length: Math.floor(next() * 9) }, hex);
      if (next() < 0.6) groups.splice(Math.floor(next() * (groups.length + 1)), 0, '');
      if (next() < 0.3) groups.push(Array.from({ length: 4 }, part).join('.'));
      text = groups.join(':');
      if (text.startsWith(':') && !text.startsWith('::')) text = `:${text}`;
      if (text.endsWith(':') && !text.endsWith('::')) text = `${text}:`;
    }
    const expected = isIP(text) !== 0;
    if (expected) valid++;
    assert.equal(words(text) !== undefined, expected, text);
  }
  assert.ok(valid > 400, `too few valid spellings generated (${valid}) for the check to mean anything`);
});

test('membership at the edges of /0, /32, /128, /64 and of merged and overlapping ranges', () => {
  const set = CidrSet.compile([
    '0.0.0.0/0',
    '2001:db8::/64',
    '::1/128',
    'fe80::/10',
    '2001:db8:0:2::/64', // adjacent to nothing: a gap after 2001:db8:0:1::/64
    '2001:db8:0:3::/64',
    '2001:db8:0:3:8000::/65', // inside the one above
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    '2001:db8:0:5::/64',
    '2001:db8:0:6::1', // one address short of touching the block above
  ]);
  const cases: [string, boolean][] = [
    ['0.0.0.0', true],
    ['255.255.255.255', true],
    ['::ffff:255.255.255.255', true],
    ['2001:db8::', true],
    ['2001:db8::ffff:ffff:ffff:ffff', true],
    ['2001:db8:0:1::', false],
    ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', false],
    ['2001:db8:0:2::', true],
    ['2001:db8:0:3:ffff:ffff:ffff:ffff', true],
    ['2001:db8:0:4::', false],
    ['::1', true],
    ['::', false],
    ['::2', false],
    ['fe80::', true],
    ['febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
    ['fec0::', false],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', false],
    ['2001:db8:0:5:ffff:ffff:ffff:ffff', true],
    ['2001:db8:0:6::', false],
    ['2001:db8:0:6::1', true],
    ['2001:db8:0:6::2', false],
    ['fe80::1%eth0', false],
    ['not-an-ip', false],
  ];
  for (const [address, member] of cases) assert.equal(set.has(address), member, address);

  const v4 = CidrSet.compile(['192.0.2.7', '192.0.2.8/32', '192.0.2.10', '198.51.100.0/25', '198.51.100.128/25', '203.0.113.0/24', '203.0.113.64/26', '10.1.2.3/8']);
  const v4Cases: [string, boolean][] = [
    ['192.0.2.6', false],
    ['192.0.2.7', true],
    ['192.0.2.8', true],
    ['192.0.2.9', false], // between two ranges one address apart
    ['192.0.2.10', true],
    ['192.0.2.11', false],
    ['198.51.99.255', false],
    ['198.51.100.0', true],
    ['198.51.100.127', true],
    ['198.51.100.128', true],
    ['198.51.100.255', true],
    ['198.51.101.0', false],
    ['203.0.113.255', true],
    ['203.0.114.0', false],
    ['10.0.0.0', true], // bits beyond the prefix are ignored when compiling
    ['10.255.255.255', true],
    ['11.0.0.0', false],
    ['::ffff:203.0.113.1', true],
    ['2001:db8::1', false],
  ];
  for (const [address, member] of v4Cases) assert.equal(v4.has(address), member, address);
});

test('IPv4-mapped IPv6 is the IPv4 address in any spelling; other IPv6 blocks hold no IPv4 address', () => {
  const set = CidrSet.compile(['10.0.0.0/8', '::ffff:192.168.0.0/112', '::ffff:c633:6407/128', '2001:db8::/32']);
  for (const member of ['10.0.0.1', '::ffff:10.0.0.1', '::FFFF:A00:1', '0:0:0:0:0:ffff:a00:1', '0000:0000:0000:0000:0000:ffff:0a00:0001', '::0:ffff:10.0.0.1', '192.168.3.4', '::ffff:192.168.3.4', '198.51.100.7', '::ffff:198.51.100.7']) {
    assert.equal(set.has(member), true, member);
  }
  for (const outsider of ['11.0.0.1', '::ffff:11.0.0.1', '::ffff:b00:1', '::10.0.0.1', '::fffe:10.0.0.1', '1::ffff:10.0.0.1', '192.169.0.0', '198.51.100.8']) {
    assert.equal(set.has(outsider), false, outsider);
  }
  // ::/0 and a /95 spanning the mapped block are IPv6 rules; 0.0.0.0/0 is not IPv6.
  const v6All = CidrSet.compile(['::/0', '::/95']);
  assert.equal(v6All.has('2001:db8::1'), true);
  for (const a of ['1.2.3.4', '::ffff:1.2.3.4', '::ffff:102:304']) assert.equal(v6All.has(a), false, a);
  const v4All = CidrSet.compile(['0.0.0.0/0']);
  assert.equal(v4All.has('::ffff:1.2.3.4'), true);
  assert.equal(v4All.has('::2'), false);
  assert.equal(CidrSet.compile(['::ffff:0:0/96']).has('8.8.8.8'), true);
  const wider = CidrSet.compile(['::ffff:0:0/95']);
  assert.equal(wider.has('::fffe:0:1'), true);
  assert.equal(wider.has('8.8.8.8'), false);
});

test('an empty set holds nothing; malformed CIDRs are refused when compiling', () => {
  const empty = CidrSet.compile([]);
  assert.equal(empty.empty, true);
  assert.equal(empty.has('1.2.3.4'), false);
  assert.equal(empty.has('::1'), false);
  assert.equal(CidrSet.compile(['::1']).empty, false);
  for (const bad of ['1.2.3.4/33', '::/129', '::1::2', '::1::2/64', 'fe80::1%eth0', 'fe80::%eth0/64', '010.0.0.0/8', '10.0.0.0.0/8', '1.2.3.4/', '1.2.3.4/-1', '1.2.3.4/ 8', '1.2.3.4/8/8', 'banana/8', '']) {
    assert.throws(() => CidrSet.compile([bad]), /not a CIDR/, bad);
  }
});

const toHex = (value: bigint): string =>
  Array.from({ length: 8 }, (_, i) => ((value >> BigInt(16 * (7 - i))) & 0xffffn).toString(16)).join(':');
/** Node's own canonical, compressed spelling, as an independent second way to write an address. */
const compressed = (full: string): string => new URL(`http://[${full}]/`).hostname.slice(1, -1);

test('agrees with net.BlockList on thousands of generated addresses, at and around every edge', () => {
  const next = random(42);
  const below = (n: number): number => Math.floor(next() * n);
  const big = (bits: number): bigint => {
    let v = 0n;
    for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(below(0x10000));
    return v & ((1n << BigInt(bits)) - 1n);
  };
  for (const size of [1, 10, 300]) {
    const cidrs: string[] = [];
    const v4Ref = new BlockList();
    const v6Ref = new BlockList();
    const v4Edges: number[] = [];
    const v6Edges: bigint[] = [];
    for (let i = 0; i < size; i++) {
      // Clustered in 10/8 and 2001:db8::/32 so that blocks overlap, nest and touch.
      const p4 = 8 + below(25);
      const base4 = (0x0a000000 | below(1 << 24)) >>> 0;
      const start4 = p4 === 32 ? base4 : (base4 & ~((2 ** (32 - p4)) - 1)) >>> 0;
      cidrs.push(`${formatIpv4(base4)}/${p4}`);
      v4Ref.addSubnet(formatIpv4(base4), p4, 'ipv4');
      v4Edges.push(start4, start4 + 2 ** (32 - p4) - 1);
      const p6 = 32 + below(97);
      const base6 = (0x20010db8n << 96n) | big(96);
      const mask6 = (1n << BigInt(128 - p6)) - 1n;
      cidrs.push(`${compressed(toHex(base6))}/${p6}`);
      v6Ref.addSubnet(toHex(base6), p6, 'ipv6');
      v6Edges.push(base6 & ~mask6, base6 | mask6);
    }
    const set = CidrSet.compile(cidrs);
    const v4Probes = [...v4Edges.flatMap((e) => [e - 1, e, e + 1]), ...Array.from({ length: 500 }, () => (0x0a000000 | below(1 << 24)) >>> 0)];
    for (const ip of v4Probes.filter((n) => n >= 0 && n < 2 ** 32)) {
      const dotted = formatIpv4(ip);
      const expected = v4Ref.check(dotted, 'ipv4');
      const hex = `${(ip >>> 16).toString(16)}:${(ip & 0xffff).toString(16)}`;
      for (const spelling of [dotted, `::ffff:${dotted}`, `::ffff:${hex}`, `0:0:0:0:0:FFFF:${hex}`]) {
        assert.equal(set.has(spelling), expected, `${spelling} against ${size} CIDRs`);
      }
    }
    const v6Probes = [...v6Edges.flatMap((e) => [e - 1n, e, e + 1n]), ...Array.from({ length: 500 }, () => (0x20010db8n << 96n) | big(96))];
    for (const ip of v6Probes) {
      const full = toHex(ip);
      const expected = v6Ref.check(full, 'ipv6');
      for (const spelling of [full, compressed(full)]) assert.equal(set.has(spelling), expected, `${spelling} against ${size} CIDRs`);
    }
  }
});
