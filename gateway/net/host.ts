// The one reading of a Host header, used for routing, plain-HTTP redirects and the host the
// upstream is told about: lower case, a trailing dot removed (`a.example.com.` is the same name),
// the port split off, IPv6 literals kept in brackets. Anything that is not a host name, an IPv4
// address or a bracketed IPv6 address (`@`, `%`, `#`, spaces, stray brackets, empty labels) has
// no normal form and is refused, never passed on.
import { isIPv6 } from 'node:net';

export type HostReading =
  | { ok: true; /** The normal form, without port. */ host: string; port: number | undefined }
  | { ok: false; why: string };

const MAX_NAME = 253;
const MAX_LABEL = 63;

function isLabelChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 /* - */ || c === 95; /* _ */
}

/** Why `name` (lower case, no trailing dot) is not a host name, or undefined when it is one. */
function badName(name: string): string | undefined {
  if (name.length === 0) return 'the host is empty';
  if (name.length > MAX_NAME) return 'the host name is longer than 253 characters';
  let label = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 46 /* . */) {
      if (label === 0) return 'the host name has an empty label';
      label = 0;
    } else if (!isLabelChar(c)) {
      return `the host holds ${JSON.stringify(name[i])}, which no host name or address does`;
    } else if (++label > MAX_LABEL) return 'a label of the host name is longer than 63 characters';
  }
  return label === 0 ? 'the host name has an empty label' : undefined;
}

function readPort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** Reads a Host header value (or a URL authority without user info). */
export function readHost(header: string): HostReading {
  let name: string;
  let rest: string;
  if (header.charCodeAt(0) === 91 /* [ */) {
    const close = header.indexOf(']');
    if (close < 0) return { ok: false, why: 'the host opens "[" without closing it' };
    const literal = header.slice(1, close);
    // Zone identifiers (`%eth0`) name an interface of the client's, never this gateway's.
    if (literal.includes('%') || !isIPv6(literal)) return { ok: false, why: 'the host holds brackets around something that is not an IPv6 address' };
    name = `[${literal.toLowerCase()}]`;
    rest = header.slice(close + 1);
  } else {
    const colon = header.indexOf(':');
    let bare = (colon < 0 ? header : header.slice(0, colon)).toLowerCase();
    rest = colon < 0 ? '' : header.slice(colon);
    if (bare.endsWith('.')) bare = bare.slice(0, -1);
    const why = badName(bare);
    if (why) return { ok: false, why };
    name = bare;
  }
  if (rest === '') return { ok: true, host: name, port: undefined };
  const port = rest.charCodeAt(0) === 58 /* : */ ? readPort(rest.slice(1)) : undefined;
  if (port === undefined) return { ok: false, why: 'the host is followed by something that is not a port' };
  return { ok: true, host: name, port };
}

/**
 * The normal form of a Host header without its port, e.g. `API.Example.com.:8443` ->
 * `api.example.com`, `[::1]:8443` -> `[::1]`; undefined when the header is missing or has no
 * normal form (and must then not be repeated to anyone).
 */
export function hostOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const read = readHost(header);
  return read.ok ? read.host : undefined;
}
