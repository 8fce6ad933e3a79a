// Which of the two request paths a request takes, decided here and nowhere else:
//
//   - forwarded (the route's guards let it through): the direct path on Node's own objects
//     (proxied.ts), where the upstream's answer is written from undici's dispatch handler;
//   - answered by the gateway itself (no route, a refusal, a CORS preflight, the login answer, a
//     callback's echo, plain HTTP that must be redirected): Fastify, the gateway's framework for
//     its own answers, admin and hooks.
//
// Forwarding skips Fastify because its per-request machinery cost a third of the throughput on
// that path (bench/RESULTS.md); the gateway's own answers are few and gain from its error
// handling, hooks and one place that writes them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';
import type { Answered, GuardInput, Refused, Verdict } from '../guards/chain.js';
import type { Logger } from '../observability/logger.js';
import type { Decisions } from '../observability/decisions.js';
import type { Tracing } from '../observability/tracing.js';
import type { RouteTarget, Snapshot } from '../snapshot.js';
import { screenHeaderNames } from '../guards/header-plan.js';
import { answerLogin } from './login-endpoint.js';
import { answerPhone } from './phone-endpoint.js';
import { answerDecrypt, answerLogout } from './session-endpoints.js';
import type { ProxiedPath } from './proxied.js';
import { requestBody, withQuery } from './proxied.js';
import { readBody } from './read-body.js';
import { requestState, type RequestState } from './request-state.js';
import { route } from './routing.js';
import { beginTrace } from './trace-hooks.js';

export interface SnapshotSource {
  readonly current: Snapshot;
}

/** What the gateway answers itself, handed to Fastify with the request. */
export type OwnVerdict = Refused | Answered;

export interface DispatchOptions {
  source: SnapshotSource;
  logger: Logger;
  decisions: Decisions;
  proxied: ProxiedPath;
  /** Spans per request when the policy has `tracing`; absent: never traced. */
  tracing?: Tracing;
  /** Whether a request may be served at all: false sends it to Fastify's plain-HTTP answer. */
  servable(req: IncomingMessage, wx: RequestState): boolean;
}

/** The request body as it streams, bounded by the policy: made once, whether a guard or the upstream reads it first. */
function bodyStream(req: IncomingMessage, wx: RequestState): Readable | undefined {
  wx.body ??= requestBody(req, wx.snapshot.policy.server.limits.body);
  if (wx.body === 'too_large') throw new GatewayError('body_too_large');
  return wx.body;
}

/** What a chain with stateful guards sees: the body is read whole at most once, bounded by the policy and the guard. */
function guardInput(req: IncomingMessage, wx: RequestState, preflight: boolean): GuardInput {
  return {
    method: req.method!,
    url: req.url ?? '/',
    headers: req.headers,
    client: wx.address.client,
    preflight,
    readBody: (limit) => readBody(bodyStream(req, wx), limit),
  };
}

/** A stateless chain reads no body: the same input without a closure per request. */
function statelessInput(req: IncomingMessage, wx: RequestState, preflight: boolean): GuardInput {
  return { method: req.method!, url: req.url ?? '/', headers: req.headers, client: wx.address.client, preflight, readBody: NO_BODY };
}

function NO_BODY(): Promise<Buffer> {
  return Promise.reject(new Error('a stateless guard chain read the request body'));
}

export function createDispatch(opts: DispatchOptions): (fastify: (req: IncomingMessage, res: ServerResponse) => void) => (req: IncomingMessage, res: ServerResponse) => void {
  const { source, logger, decisions, proxied, tracing } = opts;

  return (fastify) => {
    const own = (req: IncomingMessage, res: ServerResponse, wx: RequestState, verdict: OwnVerdict): void => {
      wx.verdict = verdict;
      fastify(req, res);
    };

    const failed = (req: IncomingMessage, res: ServerResponse, wx: RequestState, err: unknown): void => {
      if (res.headersSent) {
        logger.error({ request_id: wx.id, err, route: wx.route }, 'request failed after its answer started');
        res.destroy();
        return;
      }
      if (err instanceof GatewayError) {
        own(req, res, wx, { kind: 'refuse', reason: err.reason, message: err.message });
        return;
      }
      logger.error({ request_id: wx.id, err, route: wx.route }, 'request failed inside the gateway');
      own(req, res, wx, { kind: 'refuse', reason: 'internal_error' });
    };

    const settled = (req: IncomingMessage, res: ServerResponse, wx: RequestState, target: RouteTarget, dest: string, verdict: Verdict): void => {
      wx.trace?.verdict(target, verdict);
      wx.cors = verdict.cors;
      wx.allowedOrigin = verdict.allowedOrigin;
      if (verdict.shadow) wx.shadow = verdict.shadow;
      if (verdict.kind !== 'continue') {
        if (verdict.kind === 'answer' && verdict.callback) wx.callback = verdict.callback;
        if (verdict.kind === 'refuse' && verdict.detail !== undefined) {
          logger.warn({ request_id: wx.id, route: target.name, reason: verdict.reason, detail: verdict.detail }, 'request refused');
        }
        own(req, res, wx, verdict);
        return;
      }
      wx.openid = verdict.openid;
      if (verdict.storeBypassed) {
        // The access line says so too: an admission the policy's limits did not decide.
        wx.reason = 'store_unavailable_allowed';
        decisions.count('store_unavailable_allowed');
      }
      let streamed: Readable | undefined;
      try {
        streamed = bodyStream(req, wx);
      } catch (err) {
        // The body is never read: the connection closes after the answer instead of draining it.
        if (err instanceof GatewayError) own(req, res, wx, { kind: 'refuse', reason: err.reason, headers: { connection: 'close' } });
        else failed(req, res, wx, err);
        return;
      }
      if (target.kind === 'phone') {
        answerPhone(wx.snapshot.phone!, wx, streamed, verdict).then(
          (answer) => own(req, res, wx, answer),
          (err: unknown) => failed(req, res, wx, err),
        );
        return;
      }
      if (target.kind !== 'proxy') {
        const answering =
          target.kind === 'login'
            ? answerLogin(wx.snapshot.login!, wx, streamed, verdict)
            : (target.kind === 'decrypt' ? answerDecrypt : answerLogout)(wx, req.headers, streamed, verdict);
        answering.then(
          (answer) => own(req, res, wx, answer),
          (err: unknown) => failed(req, res, wx, err),
        );
        return;
      }
      if (target.delivery) {
        // delivery: async: the verified message is queued (for the query a decrypting route
        // forwards) and WeChat answered at once; the request's claim is committed with that
        // answer, so WeChat's retry gets it from the store, or given back when nothing was queued.
        const path = verdict.query === undefined ? dest : withQuery(dest, verdict.query);
        target.delivery.accept(verdict, path).then(
          (answer) => {
            verdict.delivery?.commit({ status: answer.status, contentType: answer.contentType ?? 'text/plain; charset=utf-8', body: Buffer.from(answer.body ?? '') });
            own(req, res, wx, answer);
          },
          (err: unknown) => {
            verdict.delivery?.release();
            failed(req, res, wx, err);
          },
        );
        return;
      }
      proxied(req, res, wx, target, dest, verdict, streamed);
    };

    return (req, res) => {
      const wx = requestState(req, source.current);
      if (tracing) beginTrace(tracing, req, res, wx);
      if (!opts.servable(req, wx)) {
        fastify(req, res);
        return;
      }
      const routing = route(req, wx);
      if (routing.kind === 'refuse') {
        own(req, res, wx, routing);
        return;
      }
      const { target, dest } = routing;
      const odd = screenHeaderNames(req.headers, wx.snapshot.reservedHeaders);
      if (odd) {
        logger.info({ request_id: wx.id, route: target.name, headers: odd.names }, odd.refuse ? 'request refused: header names with "_"' : 'request header names with "_" dropped');
        if (odd.refuse) {
          own(req, res, wx, { kind: 'refuse', reason: 'header_invalid', message: `header names other than letters, digits and "-" are refused: ${odd.names.join(', ')}` });
          return;
        }
        decisions.count('header_dropped');
      }
      let verdict: Verdict | Promise<Verdict>;
      try {
        verdict = target.chain.run(target.chain.stateful ? guardInput(req, wx, routing.preflight) : statelessInput(req, wx, routing.preflight));
      } catch (err) {
        failed(req, res, wx, err);
        return;
      }
      // Routes whose guards are all stateless are decided without a promise in between.
      if (verdict instanceof Promise) verdict.then((v) => settled(req, res, wx, target, dest, v), (err: unknown) => failed(req, res, wx, err));
      else settled(req, res, wx, target, dest, verdict);
    };
  };
}
