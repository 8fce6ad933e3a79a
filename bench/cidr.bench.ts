// Nanoseconds per membership check, in this process: net.BlockList (what trusted proxies used,
// with net.isIP to pick the family) against the compiled CidrSet, for 1 and 1,000 CIDRs, an
// address the set holds and one it does not, IPv4 and IPv6. Each case cycles through 1,024
// distinct addresses, so no single address stays hot, and checks every answer, so a wrong set
// cannot look fast.
//   node --import tsx bench/cidr.bench.ts
//   BENCH_MS=2000 node --import tsx bench/cidr.bench.ts     (time per case, default 500 ms)
import { BlockList, isIP } from 'node:net';
import { CidrSet, formatIpv4 } from '../gateway/net/cidr.js';

const MS = Number(process.env.BENCH_MS ?? 500);
const POOL = 1024;

interface Case {
  family: 'IPv4' | 'IPv6';
  size: number;
  cidrs: string[];
  hits: string[];
  misses: string[];
}

const v6Group = (n: number): string => (n & 0xffff).toString(16);
const randomGroups = (count: number): string => Array.from({ length: count }, () => v6Group(Math.floor(Math.random() * 0x10000))).join(':');

function v4Case(size: number): Case {
  // Disjoint /24s from 10.0.0.0 up, one in every third /16, so misses fall between them.
  const nets = Array.from({ length: size }, (_, i) => 0x0a000000 + i * 3 * 0x10000);
  const pick = (): number => nets[Math.floor(Math.random() * size)]!;
  return {
    family: 'IPv4',
    size,
    cidrs: nets.map((n) => `${formatIpv4(n)}/24`),
    hits: Array.from({ length: POOL }, () => formatIpv4(pick() + Math.floor(Math.random() * 256))),
    misses: Array.from({ length: POOL }, () => formatIpv4(pick() + 0x10000 + Math.floor(Math.random() * 256))),
  };
}

function v6Case(size: number): Case {
  // Disjoint /48s in 2001:db8::/32 (every other one), so misses fall between them.
  const nets = Array.from({ length: size }, (_, i) => i * 2);
  const pick = (): number => nets[Math.floor(Math.random() * size)]!;
  return {
    family: 'IPv6',
    size,
    cidrs: nets.map((n) => `2001:db8:${v6Group(n)}::/48`),
    hits: Array.from({ length: POOL }, () => `2001:db8:${v6Group(pick())}:${randomGroups(5)}`),
    misses: Array.from({ length: POOL }, () => `2001:db8:${v6Group(pick() + 1)}:${randomGroups(5)}`),
  };
}

function blockList(cidrs: string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, prefix] = cidr.split('/') as [string, string];
    list.addSubnet(net, Number(prefix), isIP(net) === 6 ? 'ipv6' : 'ipv4');
  }
  return (address) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}

function cidrSet(cidrs: string[]): (address: string) => boolean {
  const set = CidrSet.compile(cidrs);
  return (address) => set.has(address);
}

/** ns per check over about MS milliseconds, after a warm-up. */
function time(check: (address: string) => boolean, addresses: string[], expected: boolean): number {
  const run = (rounds: number): void => {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < POOL; i++) {
        if (check(addresses[i]!) !== expected) throw new Error(`${addresses[i]}: expected ${expected}`);
      }
    }
  };
  run(20);
  let rounds = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < MS * 1e6) {
    run(10);
    rounds += 10;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return elapsed / (rounds * POOL);
}

const lines = [
  `CIDR membership, ns per check (${POOL} distinct addresses per case, ~${MS} ms each), node ${process.version}`,
  '',
  '| family | CIDRs | address | net.BlockList | CidrSet | BlockList / CidrSet |',
  '|---|---:|---|---:|---:|---:|',
];
for (const c of [v4Case(1), v4Case(1000), v6Case(1), v6Case(1000)]) {
  const old = blockList(c.cidrs);
  const set = cidrSet(c.cidrs);
  for (const [label, addresses, expected] of [['held', c.hits, true], ['not held', c.misses, false]] as const) {
    const before = time(old, addresses, expected);
    const after = time(set, addresses, expected);
    lines.push(`| ${c.family} | ${c.size} | ${label} | ${before.toFixed(0)} | ${after.toFixed(0)} | ${(before / after).toFixed(1)}x |`);
  }
}
process.stdout.write(lines.join('\n') + '\n');
