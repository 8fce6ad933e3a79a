// Who the client is. The socket peer is the client unless the peer is a trusted proxy; only then
// is X-Forwarded-For walked, from the right, to the first address that is not trusted
// (proxy-addr's algorithm). Whatever the client wrote further left is never believed.
import { BlockList, isIP } from 'node:net';

export interface TrustedProxies {
  /** True when the address (already unmapped from ::ffff:) may speak for its client. */
  trusts(address: string): boolean;
  readonly empty: boolean;
}

/** Compiles CIDR strings (`10.0.0.0/8`, `::1/128`) once per policy load. */
export function compileTrustedProxies(cidrs: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const slash = cidr.indexOf('/');
    let net = slash < 0 ? cidr : cidr.slice(0, slash);
    let family: 'ipv4' | 'ipv6' = isIP(net) === 6 ? 'ipv6' : 'ipv4';
    let prefix = slash < 0 ? (family === 'ipv6' ? 128 : 32) : Number(cidr.slice(slash + 1));
    // Addresses are checked unmapped, so a rule written as ::ffff:10.0.0.1 must be IPv4 too.
    const mapped = unmapAddress(net);
    if (mapped !== net && prefix >= 96) {
      net = mapped;
      family = 'ipv4';
      prefix -= 96;
    }
    list.addSubnet(net, prefix, family);
  }
  const empty = cidrs.length === 0;
  return {
    empty,
    trusts(address) {
      if (empty) return false;
      const family = isIP(address);
      if (family === 0) return false;
      return list.check(address, family === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

/** `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4, whatever socket family carried it. */
export function unmapAddress(address: string): string {
  if (address.length > 7 && address.charCodeAt(0) === 58 && /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address)) {
    return address.slice(7);
  }
  return address;
}

export interface ClientAddress {
  /** The address the policy reasons about. */
  client: string;
  /** The socket peer, unmapped. */
  peer: string;
  /** Whether the peer is a trusted proxy (its forwarding headers count). */
  peerTrusted: boolean;
}

export function resolveClientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): ClientAddress {
  const peer = unmapAddress(socketAddress ?? '');
  if (!trusted.trusts(peer)) return { client: peer, peer, peerTrusted: false };
  if (forwardedFor === undefined) return { client: peer, peer, peerTrusted: true };
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const hops = header.split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = unmapAddress(hops[i]!.trim());
    // A malformed hop ends the walk: nothing to its left can be attributed to a trusted proxy.
    if (isIP(hop) === 0) break;
    client = hop;
    if (!trusted.trusts(hop)) break;
  }
  return { client, peer, peerTrusted: true };
}
