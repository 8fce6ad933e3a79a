// HTTP/2 requests and responses in the shape the rest of the gateway reads HTTP/1.1 ones in, so
// that every guard, limit and header rule sees one normal form whatever the client spoke:
//
//   - request headers without pseudo-headers, `:authority` read as Host (RFC 9113 §8.3.1), and a
//     request whose `:authority` and Host name different hosts refused (a backend might read the
//     other one);
//   - a body of no declared length (DATA frames without Content-Length) known as one, like a
//     chunked HTTP/1.1 body;
//   - answers that never carry connection-specific headers, which HTTP/2 forbids (RFC 9113
//     §8.2.2): Node would throw on them mid-answer.
//
// They are the classes Node's compatibility layer builds for each stream (createSecureServer's
// Http2ServerRequest / Http2ServerResponse options), so nothing is allocated per request beyond
// the header view.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { constants, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { readHost } from '../net/host.js';

const kView = Symbol('wxgw.h2.view');
/** Node's own `headers` of an HTTP/2 request, pseudo-headers included. */
const streamHeaders = Object.getOwnPropertyDescriptor(Http2ServerRequest.prototype, 'headers')!.get!;

/** What a client's `:authority` and Host say when they disagree; undefined when they agree or one is missing. */
function clash(authority: string, host: string): string | undefined {
  if (authority === host) return undefined;
  const a = readHost(authority);
  const h = readHost(host);
  // Both read as the same host and port (443 when left out: this listener is https).
  if (a.ok && h.ok && a.host === h.host && (a.port ?? 443) === (h.port ?? 443)) return undefined;
  return 'the request names one host in :authority and another in Host';
}

interface View {
  headers: IncomingHttpHeaders;
  clash: string | undefined;
}

function viewOf(raw: IncomingHttpHeaders): View {
  const headers: IncomingHttpHeaders = {};
  for (const name in raw) if (name.charCodeAt(0) !== 58 /* : */) headers[name] = raw[name];
  const authority = raw[':authority'];
  let why: string | undefined;
  if (typeof authority === 'string' && authority !== '') {
    if (headers.host === undefined) headers.host = authority;
    else why = clash(authority, headers.host);
  }
  return { headers, clash: why };
}

/** A request over HTTP/2 whose `headers` read like HTTP/1.1's: no pseudo-headers, Host from `:authority`. */
export class GatewayH2Request extends Http2ServerRequest {
  declare [kView]: View | undefined;

  get view(): View {
    return (this[kView] ??= viewOf(streamHeaders.call(this) as IncomingHttpHeaders));
  }
}
// Http2ServerRequest declares `headers` a property, which TypeScript will not let a subclass
// turn into an accessor; the prototype takes it instead. url and method keep reading the
// pseudo-headers, which Node holds apart.
Object.defineProperty(GatewayH2Request.prototype, 'headers', {
  get(this: GatewayH2Request) {
    return this.view.headers;
  },
  configurable: true,
});

/** Why a request's Host cannot be settled: `:authority` and Host disagree (HTTP/2 only). */
export function authorityClash(req: IncomingMessage): string | undefined {
  return req instanceof GatewayH2Request ? req.view.clash : undefined;
}

/**
 * Whether the request has a body of no declared length: over HTTP/2 one that did not end with its
 * headers and says no Content-Length, which HTTP/1.1 spells `Transfer-Encoding: chunked`.
 */
export function unframedBody(req: IncomingMessage): boolean {
  return req instanceof GatewayH2Request && !req.stream.endAfterHeaders && req.headers['content-length'] === undefined;
}

/** Headers HTTP/2 forbids in any message (RFC 9113 §8.2.2); `te` is allowed only as `trailers`. */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te'];

function connectionSpecific(name: string): boolean {
  return CONNECTION_SPECIFIC.includes(name.toLowerCase());
}

/** The headers without connection-specific ones: the same object when it has none, the usual case. */
function withoutConnectionHeaders(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  let found = false;
  for (const name of CONNECTION_SPECIFIC) if (headers[name] !== undefined) found = true;
  if (!found) return headers;
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) if (!connectionSpecific(name)) out[name] = headers[name];
  return out;
}

/**
 * An answer over HTTP/2. The gateway's own answers may say `Connection: close` (an HTTP/1.1
 * notion: over HTTP/2 only this stream ends), and an upstream may send headers that are hop-by-hop
 * on HTTP/2 alone (`te`, `http2-settings`); Node would throw on them, so they are left out here.
 */
export class GatewayH2Response extends Http2ServerResponse {
  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, statusMessage: string, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, a?: string | OutgoingHttpHeaders | readonly string[], b?: OutgoingHttpHeaders | readonly string[]): this {
    // HTTP/2 has no reason phrase; Node would only warn about it.
    const headers = typeof a === 'string' ? b : a;
    if (headers === undefined || Array.isArray(headers)) return super.writeHead(statusCode, headers as readonly string[] | undefined);
    return super.writeHead(statusCode, withoutConnectionHeaders(headers as OutgoingHttpHeaders));
  }

  override setHeader(name: string, value: number | string | readonly string[]): this {
    if (!connectionSpecific(name)) super.setHeader(name, value);
    return this;
  }

  override appendHeader(name: string, value: string | readonly string[]): this {
    if (!connectionSpecific(name)) super.appendHeader(name, value as string | string[]);
    return this;
  }
}
// Node ends a stream's writable side when the client resets it, so the stream's writableFinished
// says true for an answer cut short; the access log (and its client_closed) reads this instead:
// finished means the gateway ended the answer and the stream closed without an error code.
const streamFinished = Object.getOwnPropertyDescriptor(Http2ServerResponse.prototype, 'writableFinished')!.get!;
Object.defineProperty(GatewayH2Response.prototype, 'writableFinished', {
  get(this: GatewayH2Response) {
    const code = this.stream.rstCode;
    return this.writableEnded && (streamFinished.call(this) as boolean) && (code === undefined || code === constants.NGHTTP2_NO_ERROR);
  },
  configurable: true,
});
