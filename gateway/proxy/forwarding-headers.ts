// What the upstream and the client see of each other's headers. Hop-by-hop headers never cross
// the gateway; forwarding headers are the gateway's own statement, never the client's.
import type { IncomingHttpHeaders } from 'node:http';
import type { ClientAddress } from '../net/client-address.js';

// `expect` is answered by the gateway's own server; `host` is the upstream's, set by undici.
const REQUEST_DROPPED = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'expect', 'host', 'http2-settings',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id',
]);
// Claims about the client that only a trusted proxy may make.
const CLIENT_CLAIMS = new Set(['forwarded', 'x-real-ip', 'x-forwarded-port', 'x-forwarded-prefix']);
const RESPONSE_DROPPED = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'transfer-encoding', 'upgrade',
]);

export interface ForwardContext {
  readonly id: string;
  readonly address: ClientAddress;
  /** Whether a body follows; without one a stray Content-Length must not reach the upstream. */
  readonly hasBody: boolean;
}

/** Header names listed in a Connection header, which are hop-by-hop by declaration. */
function connectionListed(value: unknown): Set<string> | undefined {
  if (typeof value !== 'string' || (value.indexOf(',') < 0 && /^\s*(keep-alive|close)\s*$/i.test(value))) return undefined;
  const names = new Set<string>();
  for (const name of value.split(',')) names.add(name.trim().toLowerCase());
  return names;
}

/** The headers the upstream receives: a new object, the client's minus everything hop-by-hop. */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, ctx: ForwardContext): Record<string, string | string[]> {
  const listed = connectionListed(incoming.connection);
  const trusted = ctx.address.peerTrusted;
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || REQUEST_DROPPED.has(name)) continue;
    if (!trusted && CLIENT_CLAIMS.has(name)) continue;
    if (listed?.has(name)) continue;
    if (!ctx.hasBody && name === 'content-length') continue;
    out[name] = value;
  }
  const prior = trusted ? incoming['x-forwarded-for'] : undefined;
  const peer = ctx.address.peer;
  out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer;
  out['x-forwarded-proto'] = 'https';
  if (incoming.host !== undefined) out['x-forwarded-host'] = incoming.host;
  out['x-request-id'] = ctx.id;
  return out;
}

/** The headers the client receives: the upstream's minus everything hop-by-hop. */
export function clientResponseHeaders(
  incoming: Record<string, string | string[] | undefined>,
  id: string,
): Record<string, string | string[] | undefined> {
  const listed = connectionListed(incoming['connection']);
  const out: Record<string, string | string[] | undefined> = {};
  for (const name in incoming) {
    if (RESPONSE_DROPPED.has(name) || listed?.has(name)) continue;
    out[name] = incoming[name];
  }
  out['x-request-id'] = id;
  return out;
}
