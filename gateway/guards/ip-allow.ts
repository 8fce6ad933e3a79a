// Who may call a route, by client address: the route's `allow` minus its `deny`, compiled once per
// policy load. IPv4 CIDRs become sorted, merged ranges searched by bisection, so a check costs the
// same few comparisons for one CIDR or ten thousand, hit or miss; net.BlockList scans its rules in
// C++ but costs ~4 µs per check at any size and ~14 µs (1,000 CIDRs) to ~120 µs (5,000) for an
// address it does not hold, which would make refused traffic the expensive kind. IPv6 lists are
// short in practice and IPv6 parsing is best left to Node, so they use BlockList. The resolved
// client address is already unmapped from ::ffff:, but the guard does not rely on it.
import { BlockList, isIP } from 'node:net';
import type { AddressList } from '../policy/types.js';

export interface IpAllow {
  /**
   * `address` is the resolved client address. Something that is not an IP address is refused,
   * except by `any` without `deny`, which admits every request without looking.
   */
  allows(address: string): boolean;
}

/** The dotted quad as an unsigned 32-bit number, or -1 when it is not exactly one. */
export function ipv4ToNumber(address: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // A leading zero would read as octal to some parsers; the canonical form never has one.
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

/** Sorted, non-overlapping [start, end] IPv4 ranges with a bisecting membership test. */
class Ipv4Ranges {
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;

  constructor(ranges: [number, number][]) {
    ranges.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const r of ranges) {
      const last = merged.at(-1);
      if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    this.starts = Float64Array.from(merged, (r) => r[0]);
    this.ends = Float64Array.from(merged, (r) => r[1]);
  }

  get empty(): boolean {
    return this.starts.length === 0;
  }

  has(ip: number): boolean {
    // The last range starting at or below ip is the only one that can hold it.
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! <= ip) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found >= 0 && ip <= this.ends[found]!;
  }
}

interface CompiledList {
  v4: Ipv4Ranges;
  v6: BlockList | undefined;
}

function compileList(cidrs: readonly string[]): CompiledList {
  const v4: [number, number][] = [];
  let v6: BlockList | undefined;
  for (const cidr of cidrs) {
    const slash = cidr.indexOf('/');
    const net = slash < 0 ? cidr : cidr.slice(0, slash);
    const family = isIP(net);
    if (family === 4) {
      const prefix = slash < 0 ? 32 : Number(cidr.slice(slash + 1));
      const base = ipv4ToNumber(net);
      if (base < 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
      const size = 2 ** (32 - prefix);
      const start = base - (base % size);
      v4.push([start, start + size - 1]);
    } else if (family === 6) {
      const prefix = slash < 0 ? 128 : Number(cidr.slice(slash + 1));
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > 128) throw new Error(`not an IPv6 CIDR: ${cidr}`);
      v6 ??= new BlockList();
      v6.addSubnet(net, prefix, 'ipv6');
    } else {
      throw new Error(`not a CIDR: ${cidr}`);
    }
  }
  return { v4: new Ipv4Ranges(v4), v6 };
}

const MAPPED = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/;

/**
 * An IPv4-mapped IPv6 address in any spelling (`::ffff:10.0.0.1`, `::ffff:a00:1`, the long form)
 * is the IPv4 address, so that a mapped spelling cannot slip past an IPv4 `deny`.
 */
function mappedIpv4(address: string): number {
  // URL serialises IPv6 canonically; it refuses only zone ids (`fe80::1%eth0`), never mapped.
  const url = URL.parse(`http://[${address}]/`);
  const m = url && MAPPED.exec(url.hostname);
  return m ? parseInt(m[1]!, 16) * 65536 + parseInt(m[2]!, 16) : -1;
}

function contains(list: CompiledList, address: string): boolean {
  const v4 = ipv4ToNumber(address);
  if (v4 >= 0) return list.v4.has(v4);
  if (isIP(address) !== 6) return false;
  const mapped = mappedIpv4(address);
  if (mapped >= 0) return list.v4.has(mapped);
  return list.v6 !== undefined && list.v6.check(address, 'ipv6');
}

const EVERYONE: IpAllow = Object.freeze({ allows: () => true });

/**
 * Compiles a route's `allow` and `deny`. Throws on a malformed CIDR: the loader has validated
 * them, so that is a bug to surface at load, never a request to let through.
 */
export function compileIpAllow(allow: AddressList, deny: readonly string[]): IpAllow {
  const denied = deny.length > 0 ? compileList(deny) : undefined;
  if (allow.any && !denied) return EVERYONE;
  const allowed = allow.any ? undefined : compileList(allow.cidrs);
  return Object.freeze({
    allows(address: string): boolean {
      if (denied && contains(denied, address)) return false;
      if (!allowed) return isIP(address) !== 0;
      return contains(allowed, address);
    },
  });
}
