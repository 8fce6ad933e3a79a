// What the upstream and the client see of each other's headers. Hop-by-hop headers never cross
// the gateway; forwarding headers are the gateway's own statement, never the client's.
import type { IncomingHttpHeaders } from 'node:http';
import type { ClientAddress } from '../net/client-address.js';

// `connection` and the headers it names are removed by reply-from before we see the headers;
// `expect` is answered by the gateway's own server and undici refuses to forward it.
const REQUEST_HOP_BY_HOP = ['keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'expect'];
// Claims about the client that only a trusted proxy may make.
const CLIENT_CLAIMS = ['forwarded', 'x-real-ip', 'x-forwarded-port', 'x-forwarded-prefix'];
const RESPONSE_HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'upgrade', 'transfer-encoding'];

export interface ForwardContext {
  readonly id: string;
  readonly address: ClientAddress;
  /** The Host header the client sent. */
  readonly host: string | undefined;
}

/** Rewrites, in place, the header copy that goes to the upstream. */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: ForwardContext): IncomingHttpHeaders {
  for (const h of REQUEST_HOP_BY_HOP) if (headers[h] !== undefined) delete headers[h];
  const { address } = ctx;
  const prior = address.peerTrusted ? headers['x-forwarded-for'] : undefined;
  if (!address.peerTrusted) {
    for (const h of CLIENT_CLAIMS) if (headers[h] !== undefined) delete headers[h];
  }
  headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${address.peer}` : address.peer;
  headers['x-forwarded-proto'] = 'https';
  if (ctx.host !== undefined) headers['x-forwarded-host'] = ctx.host;
  else delete headers['x-forwarded-host'];
  headers['x-request-id'] = ctx.id;
  return headers;
}

/** Rewrites, in place, the upstream's response headers before they reach the client. */
export function clientResponseHeaders<H extends Record<string, unknown>>(headers: H, id: string): H {
  const out: Record<string, unknown> = headers;
  const listed = out['connection'];
  if (typeof listed === 'string') for (const h of listed.split(',')) delete out[h.trim().toLowerCase()];
  for (const h of RESPONSE_HOP_BY_HOP) if (out[h] !== undefined) delete out[h];
  out['x-request-id'] = id;
  return headers;
}
