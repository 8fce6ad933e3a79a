// IP addresses and compiled CIDR sets: the one parser behind trusted proxies, allow/deny and the
// policy loader's checks, and the one membership test behind the first two.
//
// A set keeps IPv4 and IPv6 as sorted, merged ranges searched by bisection, so a check costs the
// same few comparisons for one CIDR or ten thousand, hit or miss, and allocates nothing.
// net.BlockList costs ~3 µs per check at any size and grows with the list for a miss, which
// would make refused traffic (and every X-Forwarded-For hop) the expensive kind.
//
// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, `::ffff:a00:1`, `0:0:0:0:0:ffff:a00:1`) is the IPv4
// address, so a mapped spelling can neither slip past an IPv4 `deny` nor miss an IPv4 `allow`.
// A mapped rule of /96 or longer is the IPv4 rule it spells. Other IPv6 rules hold IPv6
// addresses only: `::/0` says nothing about IPv4, as `0.0.0.0/0` says nothing about IPv6
// (the loader's overlap check reasons the same way).

/** What parseIp found: not an address, IPv4 text, or IPv6 text (mapped or not). */
export type IpFamily = 0 | 4 | 6;

/**
 * Reads `text[start, end)` as one IP address into `words`, four 32-bit words, most significant
 * first; IPv4 is stored as its mapped form ::ffff:a.b.c.d. Refused: leading zeros in IPv4 parts
 * (some parsers read them as octal), zone ids (`fe80::1%eth0`), brackets, whitespace, and any
 * spelling Node's net.isIP refuses. Allocates nothing.
 */
export function parseIp(text: string, words: Uint32Array, start = 0, end = text.length): IpFamily {
  const v4 = parseIpv4(text, start, end);
  if (v4 >= 0) {
    words[0] = 0;
    words[1] = 0;
    words[2] = 0xffff;
    words[3] = v4;
    return 4;
  }
  return parseIpv6(text, words, start, end) ? 6 : 0;
}

/** Whether parsed `words` are an IPv4 address, written as IPv4 or mapped into IPv6. */
export function isIpv4Words(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** The dotted quad as an unsigned 32-bit number, or -1 when it is not exactly one. */
export function ipv4ToNumber(address: string): number {
  return parseIpv4(address, 0, address.length);
}

export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** A prefix length as CIDRs write it (1 to 3 digits, at most `bits`), or -1. */
export function parsePrefix(text: string, bits: number): number {
  if (text.length === 0 || text.length > 3) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    value = value * 10 + (c - 48);
  }
  return value <= bits ? value : -1;
}

function parseIpv4(text: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // a leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

// The groups as written, before `::` is expanded; one buffer reused by every parse.
const groups = new Uint32Array(8);

function parseIpv6(text: string, words: Uint32Array, start: number, end: number): boolean {
  if (end - start < 2) return false;
  let count = 0;
  let gap = -1; // where `::` stands among the written groups
  let i = start;
  if (text.charCodeAt(i) === 58 /* : */) {
    if (text.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    let value = 0;
    let j = i;
    for (; j < end; j++) {
      const h = hexDigit(text.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
    }
    if (j === i || j - i > 4) return false;
    if (j < end && text.charCodeAt(j) === 46) {
      // An embedded IPv4 address is the last 32 bits.
      const v4 = count <= 6 ? parseIpv4(text, i, end) : -1;
      if (v4 < 0) return false;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      break;
    }
    if (count === 8) return false;
    groups[count++] = value;
    if (j === end) break;
    if (text.charCodeAt(j) !== 58) return false;
    j++;
    if (j < end && text.charCodeAt(j) === 58) {
      if (gap >= 0) return false;
      gap = count;
      j++;
    } else if (j === end) {
      return false; // a single trailing colon
    }
    i = j;
  }
  // `::` stands for at least one zero group.
  if (gap < 0 ? count !== 8 : count > 7) return false;
  const zeros = 8 - count;
  for (let w = 0; w < 4; w++) {
    words[w] = ((group(2 * w, gap, zeros) << 16) | group(2 * w + 1, gap, zeros)) >>> 0;
  }
  return true;
}

function group(index: number, gap: number, zeros: number): number {
  if (gap < 0 || index < gap) return groups[index]!;
  return index < gap + zeros ? 0 : groups[index - zeros]!;
}

/** Sorted, merged [start, end] ranges; IPv6 ranges as four words each. */
class Ranges {
  constructor(
    readonly starts: Uint32Array,
    readonly ends: Uint32Array,
  ) {}

  /** Sorts and merges (overlapping or adjacent) BigInt ranges of `width` words per address. */
  static of(ranges: [bigint, bigint][], width: 1 | 4): Ranges {
    ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const merged: [bigint, bigint][] = [];
    for (const r of ranges) {
      const last = merged.at(-1);
      if (last && r[0] <= last[1] + 1n) {
        if (r[1] > last[1]) last[1] = r[1];
      } else {
        merged.push([r[0], r[1]]);
      }
    }
    const starts = new Uint32Array(merged.length * width);
    const ends = new Uint32Array(merged.length * width);
    merged.forEach(([s, e], i) => {
      for (let w = 0; w < width; w++) {
        const shift = BigInt(32 * (width - 1 - w));
        starts[i * width + w] = Number((s >> shift) & 0xffffffffn);
        ends[i * width + w] = Number((e >> shift) & 0xffffffffn);
      }
    });
    return new Ranges(starts, ends);
  }
}

function hasIpv4(r: Ranges, ip: number): boolean {
  // The last range starting at or below ip is the only one that can hold it.
  const { starts, ends } = r;
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! <= ip) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found >= 0 && ip <= ends[found]!;
}

/** Compares the four words at `at` in `list` with `words`: negative, 0 or positive. */
function compare(list: Uint32Array, at: number, words: Uint32Array): number {
  for (let w = 0; w < 4; w++) {
    const d = list[at + w]! - words[w]!;
    if (d !== 0) return d;
  }
  return 0;
}

function hasIpv6(r: Ranges, words: Uint32Array): boolean {
  const { starts, ends } = r;
  let lo = 0;
  let hi = starts.length / 4 - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(starts, mid * 4, words) <= 0) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found >= 0 && compare(ends, found * 4, words) >= 0;
}

function wordsToBigInt(words: Uint32Array): bigint {
  let value = 0n;
  for (let w = 0; w < 4; w++) value = (value << 32n) | BigInt(words[w]!);
  return value;
}

// Scratch for has(): checks are synchronous, so one buffer serves every set.
const scratch = new Uint32Array(4);

/** A compiled, immutable set of CIDRs. */
export class CidrSet {
  private constructor(
    private readonly v4: Ranges,
    private readonly v6: Ranges,
  ) {}

  /**
   * Compiles CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses once per policy load;
   * bits beyond the prefix are ignored. Throws on anything malformed: the loader has validated
   * the policy, so that is a bug to surface at load, never a request to let through.
   */
  static compile(cidrs: readonly string[]): CidrSet {
    const v4: [bigint, bigint][] = [];
    const v6: [bigint, bigint][] = [];
    const words = new Uint32Array(4);
    for (const cidr of cidrs) {
      const slash = cidr.indexOf('/');
      const family = parseIp(cidr, words, 0, slash < 0 ? cidr.length : slash);
      if (family === 0) throw new Error(`not a CIDR: ${cidr}`);
      const bits = family === 4 ? 32 : 128;
      const written = slash < 0 ? bits : parsePrefix(cidr.slice(slash + 1), bits);
      if (written < 0) throw new Error(`not a CIDR (prefix length outside 0..${bits}): ${cidr}`);
      const prefix = family === 4 ? written + 96 : written;
      const size = 1n << BigInt(128 - prefix);
      const first = wordsToBigInt(words) & ~(size - 1n);
      if (prefix >= 96 && isIpv4Words(words)) {
        const low = first & 0xffffffffn;
        v4.push([low, low + size - 1n]);
      } else {
        v6.push([first, first + size - 1n]);
      }
    }
    return new CidrSet(Ranges.of(v4, 1), Ranges.of(v6, 4));
  }

  get empty(): boolean {
    return this.v4.starts.length === 0 && this.v6.starts.length === 0;
  }

  /** Whether `address`, in any spelling parseIp takes, is in the set; false for a non-address. */
  has(address: string): boolean {
    return parseIp(address, scratch) !== 0 && this.hasWords(scratch);
  }

  /** Whether the address parseIp left in `words` is in the set. */
  hasWords(words: Uint32Array): boolean {
    return isIpv4Words(words) ? hasIpv4(this.v4, words[3]!) : hasIpv6(this.v6, words);
  }
}
