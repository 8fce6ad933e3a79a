// What the gateway learns about one request, settled once when it arrives and shared by both
// request paths (the direct proxied path and Fastify's): the snapshot in force, the client
// address, the request id, the gateway's own verdict, and what the access log will say.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { CompiledCors } from '../guards/cors.js';
import { resolveClientAddress, type ClientAddress } from '../net/client-address.js';
import type { Decision } from '../observability/decisions.js';
import type { MaskFindings } from '../masking/dry-run.js';
import type { Snapshot } from '../snapshot.js';
import type { OwnVerdict } from './dispatch.js';

export interface RequestState {
  readonly id: string;
  readonly snapshot: Snapshot;
  readonly address: ClientAddress;
  /** The connection it came on, for the bytes it carried (connection-bytes.ts). */
  readonly socket: Socket;
  /** performance.now() when the request arrived. */
  readonly start: number;
  /** What the gateway answers itself, once decided (dispatch.ts); undefined while it may be forwarded. */
  verdict: OwnVerdict | undefined;
  /** The request body as it streams (dispatch.ts): null until asked for, 'too_large' when Content-Length says so. */
  body: Readable | undefined | 'too_large' | null;
  route: string | undefined;
  path: string | undefined;
  /** The query string as received, without `?`; undefined without one. */
  query: string | undefined;
  reason: Decision | undefined;
  upstreamStart: number;
  upstreamMs: number | undefined;
  /** The mask profile the answer went through (`off`: a choice by identity picked none); undefined: not masked. */
  mask: string | undefined;
  /** The route's CORS guard and the Origin it allows, so the gateway's own errors carry them too. */
  cors: CompiledCors | undefined;
  allowedOrigin: string | undefined;
  /** What rules in report mode would have refused (guards/chain.ts), as `rule:reason`. */
  shadow: readonly string[] | undefined;
  /** What the route's mask profile in report mode would have done to the answer. */
  maskReport: MaskFindings | undefined;
}

const kState = Symbol('wxgw.request');
type RawWithState = IncomingMessage & { [kState]?: RequestState };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The request's state, made on first use from the snapshot in force. A trusted proxy's
 * X-Request-Id is kept so one id follows the request through every hop; anyone else's is not.
 */
export function requestState(raw: IncomingMessage, snapshot: Snapshot): RequestState {
  const held = (raw as RawWithState)[kState];
  if (held) return held;
  const address = resolveClientAddress(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], snapshot.trusted);
  const given = raw.headers['x-request-id'];
  const state: RequestState = {
    id: address.peerTrusted && typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID(),
    snapshot,
    address,
    socket: raw.socket,
    start: performance.now(),
    verdict: undefined,
    body: null,
    route: undefined,
    path: undefined,
    query: undefined,
    reason: undefined,
    upstreamStart: 0,
    upstreamMs: undefined,
    mask: undefined,
    cors: undefined,
    allowedOrigin: undefined,
    shadow: undefined,
    maskReport: undefined,
  };
  (raw as RawWithState)[kState] = state;
  return state;
}
