// What the gateway learns about one request, settled once when it arrives and shared by both
// request paths (the direct proxied path and Fastify's): the snapshot in force, the client
// address, the request id, the gateway's own verdict, and what the access log will say.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { CompiledCors } from '../guards/cors.js';
import { resolveClientAddress, type ClientAddress } from '../net/client-address.js';
import type { Decision } from '../observability/decisions.js';
import type { MaskFindings } from '../masking/dry-run.js';
import type { Snapshot } from '../snapshot.js';
import type { OwnVerdict } from './dispatch.js';
import { tlsOf, type TlsSession } from './access-log-fields.js';
import type { RequestTrace } from './trace-hooks.js';

export interface RequestState {
  readonly id: string;
  /** The W3C trace id (32 hex digits) this request belongs to; undefined while none is known. */
  traceId: string | undefined;
  /** The request as Node received it: the access log reads its user agent and body size. */
  readonly message: IncomingMessage;
  /** The connection's TLS version and SNI, read when the request arrived. */
  readonly tls: TlsSession;
  readonly snapshot: Snapshot;
  readonly address: ClientAddress;
  /** performance.now() when the request arrived. */
  readonly start: number;
  /** What the gateway answers itself, once decided (dispatch.ts); undefined while it may be forwarded. */
  verdict: OwnVerdict | undefined;
  /** The request body as it streams (dispatch.ts): null until asked for, 'too_large' when Content-Length says so. */
  body: Readable | undefined | 'too_large' | null;
  route: string | undefined;
  /** The Host header in its normal form (net/host.ts), once routing read it. */
  host: string | undefined;
  path: string | undefined;
  /** The query string as received, without `?`; undefined without one. */
  query: string | undefined;
  reason: Decision | undefined;
  upstreamStart: number;
  upstreamMs: number | undefined;
  /** The upstream's name in the policy, once forwarded, and the status it answered with. */
  upstream: string | undefined;
  upstreamStatus: number | undefined;
  /** Response body bytes written to the client. */
  bytesOut: number;
  /** The openid the guards (or the login) verified; logged only as an HMAC (access-log-fields.ts). */
  openid: string | undefined;
  /** The mask profile the answer went through (`off`: a choice by identity picked none); undefined: not masked. */
  mask: string | undefined;
  /** The route's CORS guard and the Origin it allows, so the gateway's own errors carry them too. */
  cors: CompiledCors | undefined;
  allowedOrigin: string | undefined;
  /** What rules in report mode would have refused (guards/chain.ts), as `rule:reason`. */
  shadow: readonly string[] | undefined;
  /** What the route's mask profile in report mode would have done to the answer. */
  maskReport: MaskFindings | undefined;
  /** The request's trace (trace-hooks.ts); undefined when the policy has no `tracing`. */
  trace: RequestTrace | undefined;
  /**
   * What became of a signed callback (guards/callback-replay.ts): delivered (its answer kept),
   * released (not delivered: the retry will be), replayed or deduplicated (answered from the store).
   */
  callback: 'delivered' | 'released' | 'replayed' | 'deduplicated' | undefined;
}

const kState = Symbol('wxgw.request');
type RawWithState = IncomingMessage & { [kState]?: RequestState };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A W3C traceparent of version 00 and its trace id, which may not be all zeros. */
const TRACEPARENT = /^00-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The request id: a trusted proxy's, when the policy keeps it and it is well-formed; else a new one. */
function requestId(raw: IncomingMessage, snapshot: Snapshot, peerTrusted: boolean): string {
  const { header, trust } = snapshot.policy.server.request_id;
  const given = trust && peerTrusted ? raw.headers[header] : undefined;
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/** The trace id of a trusted proxy's traceparent; a client's own is not believed. */
function trustedTraceId(raw: IncomingMessage, peerTrusted: boolean): string | undefined {
  const given = peerTrusted ? raw.headers.traceparent : undefined;
  return typeof given === 'string' ? TRACEPARENT.exec(given)?.[1] : undefined;
}

/**
 * The request's state, made on first use from the snapshot in force. A trusted proxy's
 * request id (`server.request_id`) is kept so one id follows the request through every hop;
 * anyone else's is not.
 */
export function requestState(raw: IncomingMessage, snapshot: Snapshot): RequestState {
  const held = (raw as RawWithState)[kState];
  if (held) return held;
  const address = resolveClientAddress(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], snapshot.trusted);
  const state: RequestState = {
    id: requestId(raw, snapshot, address.peerTrusted),
    traceId: trustedTraceId(raw, address.peerTrusted),
    message: raw,
    tls: tlsOf(raw.socket),
    snapshot,
    address,
    start: performance.now(),
    verdict: undefined,
    body: null,
    route: undefined,
    host: undefined,
    path: undefined,
    query: undefined,
    reason: undefined,
    upstreamStart: 0,
    upstreamMs: undefined,
    upstream: undefined,
    upstreamStatus: undefined,
    bytesOut: 0,
    openid: undefined,
    mask: undefined,
    cors: undefined,
    allowedOrigin: undefined,
    shadow: undefined,
    maskReport: undefined,
    trace: undefined,
    callback: undefined,
  };
  (raw as RawWithState)[kState] = state;
  return state;
}
