// One request's trace, when the policy has a `tracing` section: a server span from arrival to the
// response's close, the guards' decisions as its events (read from the chain's verdict: the guards
// know nothing of tracing), the upstream call as a child client span, and W3C trace context
// (traceparent, tracestate) stated to the upstream. Without `tracing` none of this exists: the
// request carries no trace and the hooks on the hot path are a property check each.
//
// What a span says is what the access line says, no more: the route's name, the normal-form path
// through the snapshot's redactor, the status and the reason. Never a token, an openid, a query
// or a header value.
//
// A traceparent is believed only from server.trusted_proxies (and `trust_incoming`): anyone
// else's starts nothing, and their tracestate, which belongs to a trace not continued, is dropped.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace, type Attributes, type Span, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import type { Reason } from '../errors.js';
import type { GuardName, Verdict } from '../guards/chain.js';
import type { ActiveTracing, Tracing } from '../observability/tracing.js';
import type { RouteTarget, UpstreamTarget } from '../snapshot.js';
import { clientGone, forwardErrorReason } from './forwarder.js';
import type { RequestState } from './request-state.js';

// HTTP's stable semantic-convention names (@opentelemetry/semantic-conventions), written out so
// that a gateway without tracing loads no more of OpenTelemetry than its API.
const ATTR_CLIENT_ADDRESS = 'client.address';
const ATTR_ERROR_TYPE = 'error.type';
const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
const ATTR_HTTP_ROUTE = 'http.route';
const ATTR_SERVER_ADDRESS = 'server.address';
const ATTR_SERVER_PORT = 'server.port';
const ATTR_URL_PATH = 'url.path';
const ATTR_URL_SCHEME = 'url.scheme';

/** Which guard a refusal comes from; the rest (a body too large, the store) is read from the route's guards. */
const GUARD_OF: Partial<Record<Reason, GuardName>> = {
  ip_not_allowed: 'allowlist',
  cors_origin_not_allowed: 'cors',
  signature_invalid: 'callback',
  timestamp_stale: 'callback',
  nonce_replayed: 'callback',
  appid_mismatch: 'callback',
  callback_malformed: 'callback',
  serial_unknown: 'callback',
  decrypt_failed: 'callback',
  identity_required: 'identity',
  token_invalid: 'identity',
  token_expired: 'identity',
  session_revoked: 'identity',
  rate_limited: 'rate_limit',
};

/** Report-mode rules as guards/chain.ts names them (`rule:reason`). */
const GUARD_OF_RULE: Readonly<Record<string, GuardName>> = {
  allow: 'allowlist',
  deny: 'allowlist',
  cors: 'cors',
  callback: 'callback',
  identity_required: 'identity',
  rate_limit: 'rate_limit',
};

function refusingGuard(reason: Reason, guards: readonly GuardName[]): GuardName | undefined {
  const named = GUARD_OF[reason];
  if (named) return named;
  if (reason === 'store_unavailable') return guards.includes('rate_limit') ? 'rate_limit' : guards.includes('callback') ? 'callback' : undefined;
  if (reason === 'body_too_large' && guards.includes('callback')) return 'callback';
  return undefined;
}

/** server.address and server.port of each upstream, parsed once; with several targets only its name (the pick is the balancer's). */
const peers = new WeakMap<UpstreamTarget, Attributes>();

function peerOf(upstream: UpstreamTarget): Attributes {
  let attrs = peers.get(upstream);
  if (!attrs) {
    const targets = upstream.config.targets;
    const url = targets.length === 1 ? targets[0]! : undefined;
    attrs = url
      ? { [ATTR_SERVER_ADDRESS]: url.hostname, [ATTR_SERVER_PORT]: Number(url.port || (url.protocol === 'https:' ? 443 : 80)), 'wxgw.upstream': upstream.name }
      : { 'wxgw.upstream': upstream.name };
    peers.set(upstream, attrs);
  }
  return attrs;
}

export class RequestTrace {
  readonly traceId: string;
  private readonly tracer: Tracer;
  private readonly propagator: TextMapPropagator;
  private readonly span: Span;
  private upstreamSpan: Span | undefined;

  constructor(
    active: ActiveTracing,
    req: IncomingMessage,
    res: ServerResponse,
    private readonly wx: RequestState,
  ) {
    const { tracer, propagator } = active;
    this.tracer = tracer;
    this.propagator = propagator;
    const believed = active.trustIncoming && wx.address.peerTrusted;
    const parent = believed && req.headers.traceparent !== undefined ? propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter) : ROOT_CONTEXT;
    // The upstream gets the gateway's traceparent either way (upstream()); a tracestate from
    // someone not believed would ride along with a trace it does not belong to.
    // Deleted only when there: a delete turns the headers object into a slower dictionary.
    if (!believed && req.headers.tracestate !== undefined) delete req.headers.tracestate;
    this.span = tracer.startSpan(
      req.method!,
      {
        kind: SpanKind.SERVER,
        attributes: { [ATTR_HTTP_REQUEST_METHOD]: req.method, [ATTR_URL_SCHEME]: 'https', [ATTR_CLIENT_ADDRESS]: wx.address.client, 'wxgw.request_id': wx.id },
      },
      parent,
    );
    this.traceId = this.span.spanContext().traceId;
    res.once('close', () => this.end(req.method!, res));
  }

  /** The guards' decisions, one event per guard that ran, in the chain's order. */
  verdict(target: RouteTarget, verdict: Verdict): void {
    const guards = target.chain.guards;
    const stoppedBy =
      verdict.kind === 'refuse' ? refusingGuard(verdict.reason, guards) : verdict.kind === 'answer' ? (verdict.body === undefined ? 'cors' : 'callback') : undefined;
    for (const guard of guards) {
      if (guard === stoppedBy) {
        this.span.addEvent(`guard.${guard}`, verdict.kind === 'refuse' ? { 'wxgw.outcome': 'refuse', 'wxgw.reason': verdict.reason } : { 'wxgw.outcome': 'answer' });
        break;
      }
      this.span.addEvent(`guard.${guard}`, passed(guard, verdict));
    }
    if (verdict.kind === 'refuse' && stoppedBy === undefined) this.span.addEvent('guard.chain', { 'wxgw.outcome': 'refuse', 'wxgw.reason': verdict.reason });
    for (const entry of verdict.shadow ?? []) {
      const colon = entry.indexOf(':');
      const rule = entry.slice(0, colon);
      this.span.addEvent(`guard.${GUARD_OF_RULE[rule] ?? 'chain'}`, { 'wxgw.outcome': 'report', 'wxgw.rule': rule, 'wxgw.reason': entry.slice(colon + 1) });
    }
  }

  /** Starts the upstream call's span; returns the headers the gateway adds, with its trace context. */
  upstream(target: RouteTarget, method: string, added: Readonly<Record<string, string>> | undefined): Record<string, string> {
    const span = this.tracer.startSpan(
      method,
      { kind: SpanKind.CLIENT, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, ...peerOf(target.upstream) } },
      trace.setSpan(ROOT_CONTEXT, this.span),
    );
    this.upstreamSpan = span;
    const headers: Record<string, string> = { ...added };
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, defaultTextMapSetter);
    return headers;
  }

  /** The upstream call ended: `status` when its answer's head arrived, `err` when it failed. */
  upstreamEnd(err: Error | null | undefined, status: number | undefined): void {
    const failure = err ? (clientGone(err) ? 'client_closed' : forwardErrorReason(err)) : status !== undefined && status >= 500 ? String(status) : undefined;
    this.closeUpstream(failure, status);
  }

  private closeUpstream(failure: string | undefined, status: number | undefined): void {
    const span = this.upstreamSpan;
    if (!span) return;
    this.upstreamSpan = undefined;
    if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (failure !== undefined) {
      span.setAttribute(ATTR_ERROR_TYPE, failure);
      span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
    }
    span.end();
  }

  private end(method: string, res: ServerResponse): void {
    const { wx, span } = this;
    const status = res.statusCode;
    // Cut before its end and not by the gateway: the client went away (as the access line says).
    const reason = !res.writableFinished && wx.reason === undefined ? 'client_closed' : wx.reason;
    if (wx.route !== undefined) {
      span.updateName(`${method} ${wx.route}`);
      span.setAttribute(ATTR_HTTP_ROUTE, wx.route);
    }
    // Paths carry personal data too (`/users/13812345678`): the access log's redactor.
    if (wx.path !== undefined) span.setAttribute(ATTR_URL_PATH, wx.snapshot.redactor.path(wx.path));
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (reason !== undefined) span.setAttribute('wxgw.reason', reason);
    if (status >= 500 || !res.writableFinished) {
      span.setAttribute(ATTR_ERROR_TYPE, reason ?? String(status));
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason ?? String(status) });
    }
    // Still open: the response closed before the upstream answered.
    this.closeUpstream('client_closed', undefined);
    span.end();
  }
}

function passed(guard: GuardName, verdict: Verdict): Attributes {
  if (verdict.kind !== 'continue') return { 'wxgw.outcome': 'pass' };
  switch (guard) {
    case 'identity':
      // Whether a caller was verified, never who: the openid stays out of traces.
      return { 'wxgw.outcome': 'pass', 'wxgw.identity': verdict.openid === undefined ? 'anonymous' : 'verified' };
    case 'rate_limit':
      return verdict.storeBypassed ? { 'wxgw.outcome': 'pass', 'wxgw.reason': 'store_unavailable_allowed' } : { 'wxgw.outcome': 'pass' };
    case 'cors':
      return { 'wxgw.outcome': 'pass', 'wxgw.cors_origin_allowed': verdict.allowedOrigin !== undefined };
    default:
      return { 'wxgw.outcome': 'pass' };
  }
}

/** Starts the request's trace when the policy in force traces; otherwise does nothing at all. */
export function beginTrace(tracing: Tracing, req: IncomingMessage, res: ServerResponse, wx: RequestState): void {
  const active = tracing.for(wx.snapshot.policy.tracing);
  if (!active) return;
  wx.trace = new RequestTrace(active, req, res, wx);
  // The access line's trace id: the trusted parent's (the same) or the new trace's.
  wx.traceId = wx.trace.traceId;
}
