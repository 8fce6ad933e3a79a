// The path of every routed request that the gateway does not refuse outright: the route's
// stateful guards (signed callback, identity, rate limits), then the login endpoint or the
// upstream, and the answer back (streamed, masked, or sealed). It runs on Node's own request and
// response objects: Fastify's per-request machinery cost more than a third of the CPU of a
// proxied request here (bench/RESULTS.md), and none of it is needed once a request is routed.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { GatewayError, type Reason } from '../errors.js';
import { rateLimitHeaders } from '../guards/rate-limit.js';
import type { Logger } from '../observability/logger.js';
import type { Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import type { RouteTarget } from '../snapshot.js';
import { StoreUnavailableError, type RateRule } from '../store/store.js';
import type { AccessLog } from './access-log.js';
import { collectUpTo, settle, type AnswerOutcome, type AnswerPlan } from './answer.js';
import { decodableAcceptEncoding } from '../masking/http.js';
import { errorAnswer, jsonAnswer, ownAnswer, type OwnAnswer } from './own-answer.js';
import { clientGone, forwardErrorReason, type ForwardResponse, type UpstreamPools } from './forwarder.js';
import { readBody } from './read-body.js';
import { screenHeaderNames } from './forwarding-headers.js';
import type { RequestState } from './request-state.js';

/** Counts request body bytes as they stream and stops the stream past the policy's limit. */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) done(new GatewayError('body_too_large'));
    else done(null, chunk);
  }
}

/** What the guards decided for the forwarded request. */
interface Forwarding {
  /** Replaces the client's body (a decrypted callback). */
  body?: Buffer;
  added?: Record<string, string>;
  answerAdded?: Record<string, string>;
  answer: AnswerPlan;
}

/** Largest login request body: `{"code": "..."}` and little else. */
const LOGIN_BODY_LIMIT = 16 * 1024;

export interface ProxiedPathOptions {
  logger: Logger;
  decisions: Decisions;
  metrics: Metrics;
  pools: UpstreamPools;
  accessLog: AccessLog;
}

export type ProxiedPath = (req: IncomingMessage, res: ServerResponse, wx: RequestState, target: RouteTarget, dest: string) => void;

export function createProxiedPath(opts: ProxiedPathOptions): ProxiedPath {
  const { logger, decisions, metrics, pools, accessLog } = opts;

  const send = (res: ServerResponse, answer: OwnAnswer): void => {
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  };

  const sendError = (res: ServerResponse, wx: RequestState, reason: Reason, message?: string, extra?: Record<string, string>): void => {
    wx.reason = reason;
    decisions.count(reason);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    send(res, errorAnswer(wx, reason, message, extra));
  };

  /**
   * The request body as it streams, bounded by the policy: undefined without one, refused before
   * reading when Content-Length already says too much, cut off mid-stream otherwise.
   */
  const requestBody = (req: IncomingMessage, wx: RequestState): Readable | undefined | 'too_large' => {
    const length = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (!chunked && (length === undefined || length === '0')) return undefined;
    const limit = wx.snapshot.policy.server.limits.body;
    const declared = Number(length);
    if (declared > limit) return 'too_large';
    return !chunked && Number.isFinite(declared) ? req : req.pipe(new BodyLimit(limit));
  };

  /**
   * Writes an answer the gateway held (masked, sealed, or collected to be looked at). A body
   * that fails mid-way (masking a stream, the upstream) cuts the connection: the client never
   * gets a truncated document that looks complete.
   */
  const writeAnswer = (res: ServerResponse, wx: RequestState, target: RouteTarget, answer: ForwardResponse): void => {
    res.writeHead(answer.statusCode, answer.headers);
    const body = answer.body;
    if (Buffer.isBuffer(body)) {
      res.end(body);
      return;
    }
    body.on('error', (bodyErr: Error & { reason?: Reason }) => {
      if (bodyErr.reason === 'mask_failed') {
        wx.reason = 'mask_failed';
        decisions.count('mask_failed');
        logger.warn({ request_id: wx.id, route: target.name, why: bodyErr.message }, 'upstream answer could not be masked mid-stream; connection cut');
      } else logger.warn({ request_id: wx.id, err: bodyErr, route: target.name }, 'upstream response failed mid-body');
      res.destroy(bodyErr);
    });
    body.pipe(res);
  };

  const upstreamFailed = (res: ServerResponse, wx: RequestState, target: RouteTarget, err: unknown): void => {
    const reason = forwardErrorReason(err);
    if (reason !== 'body_too_large') {
      logger.warn({ request_id: wx.id, err, route: target.name }, 'upstream request failed');
      metrics.route(target.name).upstreamError(reason);
    }
    sendError(res, wx, reason);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, wx: RequestState, target: RouteTarget, dest: string, how: Forwarding, body: Readable | Buffer | undefined): void => {
    const context = {
      id: wx.id,
      address: wx.address,
      hasBody: body !== undefined,
      response: target.response,
      allowedOrigin: wx.allowedOrigin,
      reserved: wx.snapshot.reservedHeaders,
      // A masked route asks the upstream only for encodings the masker can undo.
      added: how.answer.kind === 'mask' ? { ...how.added, 'accept-encoding': decodableAcceptEncoding(req.headers['accept-encoding']) } : how.added,
      answerAdded: how.answerAdded,
    };
    const request = { method: req.method!, path: dest, headers: req.headers, body, timeout: target.timeout, context };
    wx.upstreamStart = performance.now();
    if (how.answer.kind === 'stream') {
      pools.stream(target.upstream, request, res, (err, answered) => {
        wx.upstreamMs = performance.now() - wx.upstreamStart;
        if (!err || clientGone(err)) return;
        if (!answered) upstreamFailed(res, wx, target, err);
        else {
          logger.warn({ request_id: wx.id, err, route: target.name }, 'upstream response failed mid-body');
          res.destroy(err);
        }
      });
      return;
    }
    const plan = how.answer;
    pools.fetch(target.upstream, request, res, collectUpTo(plan), (err, answer) => {
      wx.upstreamMs = performance.now() - wx.upstreamStart;
      if (err || !answer) {
        if (!clientGone(err)) upstreamFailed(res, wx, target, err);
        return;
      }
      const finish = (outcome: AnswerOutcome): void => {
        if (outcome.kind === 'failed') {
          logger.warn({ request_id: wx.id, route: target.name, why: outcome.why }, 'upstream answer could not be masked');
          sendError(res, wx, outcome.reason);
          return;
        }
        if (outcome.passedUnmasked) {
          logger.warn({ request_id: wx.id, route: target.name, why: outcome.passedUnmasked }, 'upstream answer passed unmasked (on_mask_error: pass)');
          decisions.count('mask_failed_passed');
        }
        writeAnswer(res, wx, target, outcome.res);
      };
      // Most answers are decided on the spot; only decoding or a streamed body needs to wait.
      const outcome = settle(plan, answer, req.method!);
      if (!(outcome instanceof Promise)) {
        finish(outcome);
        return;
      }
      outcome.then(
        finish,
        (answerErr: unknown) => {
          logger.error({ request_id: wx.id, err: answerErr, route: target.name }, 'upstream answer handling failed');
          if (!Buffer.isBuffer(answer.body)) answer.body.destroy();
          sendError(res, wx, 'internal_error');
        },
      );
    });
  };

  /**
   * One rate-limit decision over `rules`: false when the request was refused (and answered),
   * else true, or the RateLimit-* headers for the answer when the store decided.
   */
  const decide = async (res: ServerResponse, wx: RequestState, target: RouteTarget, rules: RateRule[]): Promise<boolean | Record<string, string>> => {
    if (rules.length === 0) return true;
    try {
      const results = await wx.snapshot.store.hit(rules);
      const headers = rateLimitHeaders(results);
      if (results.every((r) => r.allowed)) return headers;
      sendError(res, wx, 'rate_limited', undefined, headers);
      return false;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      if (!wx.snapshot.storeFailOpen) {
        logger.warn({ request_id: wx.id, route: target.name, err }, 'rate limit not decided: store unavailable');
        sendError(res, wx, 'store_unavailable');
        return false;
      }
      decisions.count('store_unavailable_allowed');
      return true;
    }
  };

  /** In the order of ARCHITECTURE.md: signed callback, identity, rate limits; then login or forward. */
  const guarded = async (req: IncomingMessage, res: ServerResponse, wx: RequestState, target: RouteTarget, dest: string, body: Readable | undefined): Promise<void> => {
    const snapshot = wx.snapshot;
    const how: Forwarding = { answer: target.answer };
    const added: Record<string, string> = {};
    let sent: Readable | Buffer | undefined = body;

    if (target.callback) {
      const raw = await readBody(body, target.callback.maxBody);
      const q = req.url!.indexOf('?');
      const query = new URLSearchParams(q < 0 ? '' : req.url!.slice(q + 1));
      const outcome = await target.callback.check({ method: req.method!, query, headers: req.headers, body: raw });
      if (outcome.kind === 'refuse') {
        logger.warn({ request_id: wx.id, route: target.name, reason: outcome.reason, detail: outcome.detail }, 'callback refused');
        sendError(res, wx, outcome.reason);
        return;
      }
      if (outcome.kind === 'answer') {
        send(res, ownAnswer(wx, outcome.status, outcome.contentType, outcome.body, { 'cache-control': 'no-store' }));
        return;
      }
      sent = outcome.body;
      // Refused further on (rate limits, the store) or abandoned before forwarding: WeChat will
      // retry, so the nonce is given back.
      const release = outcome.release;
      if (release) res.once('close', () => wx.upstreamStart === 0 && release());
      Object.assign(added, outcome.headers, { 'content-type': outcome.contentType, 'content-length': String(outcome.body.length) });
      if (outcome.sealReply) how.answer = { kind: 'seal', seal: outcome.sealReply };
    }

    let openid: string | undefined;
    let charged: RateRule[] = [];
    let chargedHeaders: Record<string, string> | undefined;
    if (snapshot.identity && target.kind === 'proxy') {
      // A token not verified before costs a signature check, which a flood of made-up tokens
      // would make the gateway pay for free: each one is first counted where an anonymous
      // request from that address would be, and refused there once that budget is spent.
      let outcome = snapshot.identity.identify(req.headers);
      if (outcome.kind === 'pending') {
        if (target.rateLimit) {
          charged = target.rateLimit.fallbackRules(wx.address.client);
          const ahead = await decide(res, wx, target, charged);
          if (!ahead) return;
          if (ahead !== true) chargedHeaders = ahead;
        }
        outcome = await outcome.check();
      }
      if (outcome.kind === 'verified') {
        openid = outcome.openid;
        added[snapshot.identity.upstreamHeader] = openid;
      } else if (target.identityRequired) {
        sendError(res, wx, outcome.kind === 'refused' ? outcome.reason : 'identity_required');
        return;
      }
    }

    if (target.rateLimit) {
      // A token that did not verify was already counted against the address's anonymous budget.
      const rules = target.rateLimit.rules(openid, wx.address.client).filter((r) => !charged.some((c) => c.key === r.key));
      const admitted = await decide(res, wx, target, rules);
      if (!admitted) return;
      how.answerAdded = admitted === true ? chargedHeaders : admitted;
    }

    if (target.kind === 'login') {
      const result = await snapshot.login!.handle(await readBody(body, LOGIN_BODY_LIMIT), { requestId: wx.id });
      if (result.kind === 'refused') {
        sendError(res, wx, result.reason, result.message);
        return;
      }
      send(res, jsonAnswer(wx, result.body, how.answerAdded));
      return;
    }

    if (Object.keys(added).length > 0) how.added = added;
    forward(req, res, wx, target, dest, how, sent);
  };

  const failed = (res: ServerResponse, wx: RequestState, target: RouteTarget, err: unknown): void => {
    if (res.headersSent) {
      logger.error({ request_id: wx.id, err, route: target.name }, 'request failed after its answer started');
      res.destroy();
      return;
    }
    if (err instanceof GatewayError) sendError(res, wx, err.reason, err.message);
    // A callback whose nonce cannot be recorded could be a replay: refused whatever
    // on_unavailable says (that choice covers rate limits only).
    else if (err instanceof StoreUnavailableError) {
      logger.warn({ request_id: wx.id, err, route: target.name }, 'request refused: store unavailable');
      sendError(res, wx, 'store_unavailable');
    } else {
      logger.error({ request_id: wx.id, err, route: target.name }, 'request failed inside the gateway');
      sendError(res, wx, 'internal_error');
    }
  };

  return (req, res, wx, target, dest) => {
    res.once('close', () => accessLog(wx, req.method!, res.statusCode, res.writableFinished));
    const body = requestBody(req, wx);
    if (body === 'too_large') {
      // The body is never read: the connection closes after the answer instead of draining it.
      sendError(res, wx, 'body_too_large', undefined, { connection: 'close' });
      return;
    }
    const odd = screenHeaderNames(req.headers, wx.snapshot.reservedHeaders);
    if (odd) {
      logger.info({ request_id: wx.id, route: target.name, headers: odd.names }, odd.refuse ? 'request refused: header names with "_"' : 'request header names with "_" dropped');
      if (odd.refuse) return sendError(res, wx, 'header_invalid', `header names other than letters, digits and "-" are refused: ${odd.names.join(', ')}`);
      decisions.count('header_dropped');
    }
    // Routes without stateful guards take the direct path, with no promise in between.
    if (target.guarded) {
      guarded(req, res, wx, target, dest, body).catch((err: unknown) => failed(res, wx, target, err));
      return;
    }
    forward(req, res, wx, target, dest, { answer: target.answer }, body);
  };
}
