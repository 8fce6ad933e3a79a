// Who the client is. The socket peer is the client unless the peer is a trusted proxy; only then
// is X-Forwarded-For walked, from the right, to the first address that is not trusted
// (proxy-addr's algorithm). Whatever the client wrote further left is never believed.
// Every address is parsed once, in place in the header (net/cidr.ts), and checked against one
// compiled set: no per-hop split, trim or BlockList.
import { CidrSet, formatIpv4, isIpv4Words, parseIp } from './cidr.js';

export interface TrustedProxies {
  /** True when the address (in any spelling, ::ffff: mapped or not) may speak for its client. */
  trusts(address: string): boolean;
  /** The same for an address parseIp has already read into `words`. */
  trustsParsed(words: Uint32Array): boolean;
  readonly empty: boolean;
}

/** Compiles CIDR strings (`10.0.0.0/8`, `::1/128`, `::ffff:10.0.0.2/128`) once per policy load. */
export function compileTrustedProxies(cidrs: readonly string[]): TrustedProxies {
  const set = CidrSet.compile(cidrs);
  return Object.freeze({
    empty: set.empty,
    trusts: (address: string) => set.has(address),
    trustsParsed: (parsed: Uint32Array) => set.hasWords(parsed),
  });
}

// Resolution is synchronous, so one buffer serves every request.
const words = new Uint32Array(4);

/**
 * The address in `text[start, end)` that parseIp has read into `words`, as the policy reasons
 * about it: IPv4-mapped IPv6 in any spelling becomes the dotted quad.
 */
function unmapped(text: string, start: number, end: number): string {
  if (!isIpv4Words(words)) return text.slice(start, end);
  // A dotted tail is the embedded IPv4 address exactly as written; otherwise spell it out.
  const colon = text.lastIndexOf(':', end - 1);
  if (colon < start) return text.slice(start, end);
  return text.lastIndexOf('.', end - 1) > colon ? text.slice(colon + 1, end) : formatIpv4(words[3]!);
}

/** `::ffff:1.2.3.4` (or `::ffff:102:304`) is the IPv4 client 1.2.3.4, whatever socket family carried it. */
export function unmapAddress(address: string): string {
  return parseIp(address, words) === 6 ? unmapped(address, 0, address.length) : address;
}

export interface ClientAddress {
  /** The address the policy reasons about. */
  client: string;
  /** The socket peer, unmapped. */
  peer: string;
  /** Whether the peer is a trusted proxy (its forwarding headers count). */
  peerTrusted: boolean;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

export function resolveClientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): ClientAddress {
  const socket = socketAddress ?? '';
  if (parseIp(socket, words) === 0) return { client: socket, peer: socket, peerTrusted: false };
  const peer = unmapped(socket, 0, socket.length);
  if (!trusted.trustsParsed(words)) return { client: peer, peer, peerTrusted: false };
  if (forwardedFor === undefined) return { client: peer, peer, peerTrusted: true };
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  let client = peer;
  for (let end = header.length; ; ) {
    const comma = end > 0 ? header.lastIndexOf(',', end - 1) : -1;
    let start = comma + 1;
    let stop = end;
    while (start < stop && isSpace(header.charCodeAt(start))) start++;
    while (stop > start && isSpace(header.charCodeAt(stop - 1))) stop--;
    // A malformed hop ends the walk: nothing to its left can be attributed to a trusted proxy.
    if (parseIp(header, words, start, stop) === 0) break;
    client = unmapped(header, start, stop);
    if (!trusted.trustsParsed(words) || comma < 0) break;
    end = comma;
  }
  return { client, peer, peerTrusted: true };
}
