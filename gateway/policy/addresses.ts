// Listen addresses and CIDRs as the policy spells them. Addresses are compared in a canonical
// form so that `::1`, `0:0::1` and `[::1]` are recognised as one address.

import { parseIp, parsePrefix } from '../net/cidr.js';
import type { ListenAddress } from '../types/policy.js';
import type { Parsed } from './units.js';

const LISTEN_FORM = 'host:port or [ipv6]:port, the host an IP address or localhost (e.g. 0.0.0.0:8443, [::]:8443)';
const HOST_FORM = 'a host name such as api.example.com, without scheme, port or path';
const URL_FORM = 'an http:// or https:// URL such as http://127.0.0.1:9000 or https://backend:9443/v1';
const CIDR_FORM = 'an IP address or a CIDR block (e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32, ::1)';

/** RFC 5952 text: lower-case, no leading zeros, the longest run of zero groups as `::`. */
function formatV6(bytes: number[]): string {
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

interface Ip {
  v6: boolean;
  bytes: number[];
}

/** The address as bytes, read by the parser the gateway checks clients with (net/cidr.ts). */
function readIp(text: string): Ip | undefined {
  const words = new Uint32Array(4);
  const family = parseIp(text, words);
  if (family === 0) return undefined;
  const bytes = [...words].flatMap((w) => [w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff]);
  return family === 4 ? { v6: false, bytes: bytes.slice(12) } : { v6: true, bytes };
}

function formatIp(ip: Ip): string {
  return ip.v6 ? formatV6(ip.bytes) : ip.bytes.join('.');
}

export function parseListen(text: string): Parsed<ListenAddress> {
  const fail = (why: string): Parsed<ListenAddress> => ({ ok: false, why: `${why}; expected ${LISTEN_FORM}` });
  const split = splitHostPort(text);
  if (split === undefined) {
    if (/^\d+$/.test(text)) return fail('has no host');
    if (!/:\d+$/.test(text)) return fail('has no port');
    if (/^[^[].*:.*:/.test(text)) return fail('holds an IPv6 address without brackets');
    return fail('is not host:port');
  }
  if (typeof split === 'string') return fail(split);
  if (split.v6) return { ok: true, value: { host: split.host, port: split.port } };
  const { host, port } = split;
  if (host === '') return fail('has no host (write 0.0.0.0 or [::] to listen on every address)');
  if (host === 'localhost' || readIp(host)?.v6 === false) return { ok: true, value: { host, port } };
  return fail(`names \`${host}\`, which is not an IP address or localhost (listeners bind addresses, not names)`);
}

export function parseCidr(text: string): Parsed<string> {
  const fail = (why: string): Parsed<string> => ({ ok: false, why: `${why}; expected ${CIDR_FORM}` });
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const ip = readIp(addressText);
  if (!ip) return fail(slash < 0 ? 'is not an IP address' : `holds \`${addressText}\`, which is not an IP address`);
  const bits = ip.bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    prefix = parsePrefix(text.slice(slash + 1), bits);
    if (prefix < 0) return fail(`has a prefix length outside 0..${bits}`);
  }
  const network = ip.bytes.map((byte, i) => {
    const keep = Math.min(8, Math.max(0, prefix - i * 8));
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
  const networkText = formatIp({ v6: ip.v6, bytes: network });
  if (network.some((byte, i) => byte !== ip.bytes[i])) {
    return {
      ok: false,
      why: `has bits set beyond the /${prefix} prefix; the block is ${networkText}/${prefix}, or write the single address without a prefix`,
    };
  }
  return { ok: true, value: `${networkText}/${prefix}` };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const ip = readIp(host);
  if (!ip) return false;
  if (!ip.v6) return ip.bytes[0] === 127;
  const text = formatV6(ip.bytes);
  return text === '::1' || text.startsWith('::ffff:127.');
}

/** Every address a listener binds: `::` is dual-stack on the platforms we run on. */
type Bound = { every: 'all' | 'v4' } | { addresses: string[] };

function bound(host: string): Bound {
  if (host === 'localhost') return { addresses: ['127.0.0.1', '::1'] };
  const ip = readIp(host);
  if (!ip) return { addresses: [host] };
  if (ip.bytes.every((b) => b === 0)) return { every: ip.v6 ? 'all' : 'v4' };
  return { addresses: [formatIp(ip)] };
}

function coversAny(a: Bound, b: Bound): boolean {
  if (!('every' in a)) return false;
  if (a.every === 'all' || 'every' in b) return true;
  return b.addresses.some((address) => readIp(address)?.v6 === false);
}

/** True when both listeners would bind the same port on at least one common address. */
export function listenersClash(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port !== b.port) return false;
  const x = bound(a.host);
  const y = bound(b.host);
  if (coversAny(x, y) || coversAny(y, x)) return true;
  return 'addresses' in x && 'addresses' in y && x.addresses.some((address) => y.addresses.includes(address));
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** A host name as matched against a request's Host header: returned lower-case. */
export function parseHost(text: string): Parsed<string> {
  const fail = (why: string): Parsed<string> => ({ ok: false, why: `${why}; expected ${HOST_FORM}` });
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return fail('is a URL');
  if (text.includes('/')) return fail('holds a path');
  if (text.includes('*')) return fail('holds a wildcard, which is not supported (list each name in its own route)');
  if (/:\d*$/.test(text) && !text.includes('::')) return fail('holds a port');
  if (!HOST_NAME.test(text)) return fail('is not a valid host name');
  return { ok: true, value: text.toLowerCase() };
}

/** Hides the user:password part of a URL before it goes into a message. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}

export function parseUpstreamUrl(text: string): Parsed<URL> {
  const fail = (why: string): Parsed<URL> => ({ ok: false, why: `${why}; expected ${URL_FORM}` });
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return fail('has no scheme');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(`uses ${url.protocol}//`);
  if (url.username !== '' || url.password !== '') {
    return fail('carries credentials (user:password@), which would be sent to the upstream with every request');
  }
  if (text.includes('?')) return fail('has a query string; routes forward the request\'s own query');
  if (text.includes('#')) return fail('has a fragment, which is never sent to a server');
  return { ok: true, value: url };
}

/** A store URL: redis:// or rediss://, host required; credentials allowed (never shown). */
export function parseRedisUrl(text: string): Parsed<URL> {
  const fail = (why: string): Parsed<URL> => ({ ok: false, why: `${why}; expected redis://[user:password@]host:port[/db] or rediss://...` });
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('is not a valid URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return fail(`uses ${url.protocol}//`);
  if (url.hostname === '') return fail('names no host');
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) return fail(`names database \`${db}\`, which is not a database number`);
  return { ok: true, value: url };
}

/**
 * A client address or block for `allow`, `deny` and `ip_lists`. Sockets report IPv4 clients in
 * IPv4 form, so an IPv4-mapped block (`::ffff:192.0.2.0/120`) becomes its IPv4 equivalent.
 */
export function parseClientCidr(text: string): Parsed<string> {
  const parsed = parseCidr(text);
  if (!parsed.ok) return parsed;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(parsed.value);
  if (mapped && Number(mapped[2]) >= 96) return { ok: true, value: `${mapped[1]}/${Number(mapped[2]) - 96}` };
  return parsed;
}

function block(cidr: string): { ip: Ip; prefix: number } {
  const [address, prefix] = cidr.split('/') as [string, string];
  return { ip: readIp(address)!, prefix: Number(prefix) };
}

/** True when two normalised blocks (as parseCidr returns them) share at least one address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = block(a);
  const y = block(b);
  if (x.ip.v6 !== y.ip.v6) return false;
  const prefix = Math.min(x.prefix, y.prefix);
  return x.ip.bytes.every((byte, i) => {
    const keep = Math.min(8, Math.max(0, prefix - i * 8));
    const mask = (0xff << (8 - keep)) & 0xff;
    return (byte & mask) === (y.ip.bytes[i]! & mask);
  });
}

const ORIGIN_FORM =
  'scheme://host[:port] with scheme http or https and no path, e.g. https://app.example.com or https://*.example.com';
const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' };

/**
 * A CORS origin as browsers send it in the Origin header, lower-cased: `https://app.example.com`,
 * `http://localhost:5173`, or a subdomain pattern `https://*.example.com`. `*` and `null` are
 * decided by the caller, which knows about credentials.
 */
export function parseOrigin(text: string): Parsed<string> {
  const fail = (why: string): Parsed<string> => ({ ok: false, why: `${why}; expected ${ORIGIN_FORM}` });
  const lower = text.toLowerCase();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//.exec(lower);
  if (!scheme) return fail('has no scheme');
  if (scheme[1] !== 'http' && scheme[1] !== 'https') return fail(`uses ${scheme[1]}://, which is not an origin browsers send for web pages`);
  const rest = lower.slice(scheme[0].length);
  if (rest.includes('@')) return fail('holds user information (user@), which an Origin never carries');
  if (rest.includes('?')) return fail('has a query string, which an Origin never carries');
  if (rest.includes('#')) return fail('has a fragment, which an Origin never carries');
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const trimmed = `${scheme[0]}${rest.slice(0, slash)}`;
    return fail(slash === rest.length - 1 ? `ends with \`/\`; browsers send \`${trimmed}\`` : `has a path; browsers send only \`${trimmed}\``);
  }
  const hostPort = /^([^:]*)(?::(\d*))?$/.exec(rest);
  if (!hostPort) return fail('is not host or host:port');
  const [, host = '', port] = hostPort;
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return fail(`has port \`${port}\`, outside 1..65535`);
    if (port === DEFAULT_PORTS[scheme[1]]) {
      return fail(`writes ${scheme[1]}'s default port ${port}, which browsers leave out of the Origin, so it would never match; write \`${scheme[0]}${host}\``);
    }
  }
  const wildcard = host.startsWith('*.');
  const name = wildcard ? host.slice(2) : host;
  if (name.includes('*')) return fail('holds a `*` that is not the whole first label; the only pattern is `*.` in front of a domain, as in https://*.example.com');
  if (!HOST_NAME.test(name)) return fail(`holds \`${host}\`, which is not a valid host name`);
  if (wildcard && name.split('.').length < 2) {
    return fail(`matches every subdomain of \`${name}\`; after \`*.\` write a domain of at least two labels, e.g. https://*.example.com`);
  }
  return { ok: true, value: lower };
}

/** host:port of a Redis node or sentinel (`store.cluster.nodes`, `store.sentinels.hosts`); names are resolved when connecting. */
export function parseRedisNode(text: string): Parsed<{ host: string; port: number }> {
  const fail = (why: string): Parsed<{ host: string; port: number }> => ({ ok: false, why: `${why}; expected host:port such as redis-a:6379, 10.0.0.5:6379 or [2001:db8::5]:6379` });
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return fail('is a URL');
  const split = splitHostPort(text);
  if (split === undefined) return fail(/:\d+$/.test(text) ? 'holds an IPv6 address without brackets' : 'has no port');
  if (typeof split === 'string') return fail(split);
  const { host: plain, port } = split;
  if (split.v6 || readIp(plain)?.v6 === false) return { ok: true, value: { host: plain, port } };
  const host = parseHost(plain);
  if (!host.ok) return fail(`names \`${plain}\`, which is not a host name or IP address`);
  return { ok: true, value: { host: host.value, port } };
}

/**
 * `host:port` or `[v6]:port` split, the port in range and a bracketed address read and written
 * in its canonical form; undefined when the text has neither shape, a reason when a part is wrong.
 */
function splitHostPort(text: string): { host: string; port: number; v6: boolean } | string | undefined {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d+)$/.exec(text);
  if (!match) return undefined;
  const [, bracketed, plain, portText] = match;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `has port ${portText}, outside 1..65535`;
  if (bracketed === undefined) return { host: plain!, port, v6: false };
  const ip = readIp(bracketed);
  if (!ip?.v6) return `holds \`${bracketed}\`, which is not an IPv6 address`;
  return { host: formatV6(ip.bytes), port, v6: true };
}
