// The forwarding path: a request its route's guards let through goes to the upstream with what
// they added, and the answer comes back streamed, masked or sealed. Only I/O happens here; every
// decision was made by the guard chain (guards/chain.ts) before. It runs on Node's own request and
// response objects: Fastify's per-request machinery cost more than a third of the CPU of a
// proxied request here (bench/RESULTS.md), and none of it is needed to forward.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { GatewayError, type Reason } from '../errors.js';
import type { Passed } from '../guards/chain.js';
import { ANSWER_LIMIT, type CallbackDelivery } from '../guards/callback-replay.js';
import type { Logger } from '../observability/logger.js';
import type { Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import type { AnswerPlan, RouteTarget } from '../snapshot.js';
import type { AccessLog } from './access-log.js';
import { collectUpTo, planFor, settle, type AnswerOutcome } from './answer.js';
import { decodableAcceptEncoding } from '../masking/http.js';
import { errorAnswer, type OwnAnswer } from './own-answer.js';
import { clientGone, forwardErrorReason, type ForwardResponse, type UpstreamPools } from './forwarder.js';
import type { RequestState } from './request-state.js';
import { awaitDrain } from './write-stall.js';
import { unframedBody } from './h2-messages.js';

/** Counts request body bytes as they stream and stops the stream past the policy's limit. */
export class BodyLimit extends Transform {
  /** Bytes read so far: the access log's bytes_in for a body of no declared length. */
  seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) done(new GatewayError('body_too_large'));
    else done(null, chunk);
  }
}

/**
 * The request body as it streams, bounded by the policy: undefined without one, refused before
 * reading when Content-Length already says too much, cut off mid-stream otherwise.
 */
export function requestBody(req: IncomingMessage, limit: number): Readable | undefined | 'too_large' {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined || unframedBody(req);
  if (!chunked && (length === undefined || length === '0')) return undefined;
  const declared = Number(length);
  if (declared > limit) return 'too_large';
  return !chunked && Number.isFinite(declared) ? req : req.pipe(new BodyLimit(limit));
}

/** Whether the client went away: an HTTP/2 answer (Node's compatibility layer) says so on its stream. */
function clientLeft(res: ServerResponse): boolean {
  return res.destroyed === true || (res as { stream?: { destroyed?: boolean } }).stream?.destroyed === true;
}

/** Stands for a streamed callback answer past ANSWER_LIMIT: the ledger keeps its status alone. */
const TOO_LARGE = Buffer.alloc(ANSWER_LIMIT + 1);

export interface ProxiedPathOptions {
  logger: Logger;
  decisions: Decisions;
  metrics: Metrics;
  pools: UpstreamPools;
  accessLog: AccessLog;
}

/**
 * Forwards a request its guards passed. `body`: the client's body as it streams (requestBody()),
 * unless the guards replaced it.
 */
export type ProxiedPath = (req: IncomingMessage, res: ServerResponse, wx: RequestState, target: RouteTarget, dest: string, passed: Passed, body: Readable | undefined) => void;

export function createProxiedPath(opts: ProxiedPathOptions): ProxiedPath {
  const { logger, decisions, metrics, pools, accessLog } = opts;

  const send = (res: ServerResponse, wx: RequestState, answer: OwnAnswer): void => {
    wx.bytesOut = Buffer.byteLength(answer.body);
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  };

  const sendError = (res: ServerResponse, wx: RequestState, reason: Reason, message?: string, extra?: Record<string, string>): void => {
    // A callback's upstream request outlives its client: its line was written when the client went.
    if (clientLeft(res)) return;
    wx.reason = reason;
    decisions.count(reason);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    send(res, wx, errorAnswer(wx, reason, message, extra));
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
      wx.bytesOut = body.length;
      res.end(body);
      return;
    }
    body.on('error', (bodyErr: Error & { reason?: Reason }) => {
      if (bodyErr.reason === 'mask_failed') {
        wx.reason = 'mask_failed';
        decisions.count('mask_failed');
        logger.warn({ request_id: wx.id, route: target.name, why: bodyErr.message }, 'upstream answer could not be masked mid-stream; connection cut');
        res.destroy(bodyErr);
      } else if (clientGone(bodyErr)) res.destroy();
      else failedMidBody(res, wx, target, bodyErr);
    });
    // pipe() by hand: the same backpressure, with a client that stops reading cut after send_timeout.
    const sendTimeout = wx.snapshot.policy.server.limits.send_timeout;
    body.on('data', (chunk: Buffer) => {
      wx.bytesOut += chunk.length;
      if (res.write(chunk)) return;
      body.pause();
      awaitDrain(res, sendTimeout, () => body.resume());
    });
    body.once('end', () => res.end());
    res.once('close', () => {
      if (!res.writableFinished) body.destroy();
    });
  };

  /** The upstream failed after its answer started: the connection is cut, and the access line says why. */
  const failedMidBody = (res: ServerResponse, wx: RequestState, target: RouteTarget, err: Error): void => {
    const reason = forwardErrorReason(err);
    wx.reason = reason;
    decisions.count(reason);
    metrics.route(target.name).upstreamError(reason);
    logger.warn({ request_id: wx.id, err, route: target.name }, 'upstream response failed mid-body');
    res.destroy(err);
  };

  const upstreamFailed = (res: ServerResponse, wx: RequestState, target: RouteTarget, err: unknown): void => {
    const reason = forwardErrorReason(err);
    if (reason !== 'body_too_large') {
      logger.warn({ request_id: wx.id, err, route: target.name }, 'upstream request failed');
      metrics.route(target.name).upstreamError(reason);
    }
    sendError(res, wx, reason);
  };

  /**
   * A callback's delivery ends with the upstream's answer: below 500 it is delivered, and what
   * the client gets (`status`, `contentType`, `body`) is kept for WeChat's retries; 500 and above
   * say it was not, and the claim goes back so a retry is delivered. A streamed body is kept
   * once it ended, if it fit in ANSWER_LIMIT.
   */
  const endDelivery = (wx: RequestState, delivery: CallbackDelivery, upstreamStatus: number, status: number, contentType: string | string[] | undefined, body: Buffer | Readable): void => {
    if (upstreamStatus >= 500) {
      delivery.release();
      wx.callback = 'released';
      return;
    }
    wx.callback = 'delivered';
    const type = typeof contentType === 'string' ? contentType : 'text/plain; charset=utf-8';
    if (Buffer.isBuffer(body)) {
      delivery.commit({ status, contentType: type, body });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= ANSWER_LIMIT) chunks.push(chunk);
    });
    body.once('end', () => delivery.commit(size <= ANSWER_LIMIT ? { status, contentType: type, body: Buffer.concat(chunks) } : { status, contentType: type, body: TOO_LARGE }));
    body.once('error', () => delivery.release());
  };

  /** A callback answered after its client had gone: nothing is written, and a streamed body is read to its end to be kept. */
  const orphaned = (res: ServerResponse, wx: RequestState, target: RouteTarget, answer: ForwardResponse): boolean => {
    if (!clientLeft(res)) return false;
    if (!Buffer.isBuffer(answer.body)) answer.body.resume();
    logger.info({ request_id: wx.id, route: target.name, upstream_status: answer.statusCode, callback: wx.callback }, 'callback answered after its client had gone; the answer is kept for the retry');
    return true;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, wx: RequestState, target: RouteTarget, dest: string, how: Passed, streamed: Readable | undefined): void => {
    const body = how.body ?? streamed;
    const delivery = how.delivery;
    const plan: AnswerPlan = how.seal ? { kind: 'seal', seal: how.seal } : planFor(target.answer, how, wx);
    const added = Object.keys(how.added).length > 0 ? how.added : undefined;
    const context = {
      id: wx.id,
      idHeader: wx.snapshot.policy.server.request_id.header,
      tally: wx,
      address: wx.address,
      hasBody: body !== undefined,
      response: target.response,
      requestRules: target.requestRules,
      allowedOrigin: wx.allowedOrigin,
      reserved: wx.snapshot.reservedHeaders,
      // A masked route asks the upstream only for encodings the masker can undo.
      added: plan.kind === 'mask' ? { ...added, 'accept-encoding': decodableAcceptEncoding(req.headers['accept-encoding']) } : added,
      answerAdded: how.answerAdded,
      sendTimeout: wx.snapshot.policy.server.limits.send_timeout,
    };
    const path = how.query === undefined ? dest : withQuery(dest, how.query);
    const headers = how.dropHeaders ? withoutHeaders(req.headers, how.dropHeaders) : req.headers;
    const request = { method: req.method!, path, headers, body, timeout: target.timeout, context, detached: delivery !== undefined };
    wx.upstream = target.upstream.name;
    wx.upstreamStart = performance.now();
    if (wx.trace) context.added = wx.trace.upstream(target, req.method!, context.added);
    if (plan.kind === 'stream' && !delivery) {
      pools.stream(target.upstream, request, res, (err, answered) => {
        wx.upstreamMs = performance.now() - wx.upstreamStart;
        wx.trace?.upstreamEnd(err, answered ? res.statusCode : undefined);
        if (!err || clientGone(err)) return;
        if (!answered) upstreamFailed(res, wx, target, err);
        else failedMidBody(res, wx, target, err);
      });
      return;
    }
    // A callback's answer is held to be kept, even on a route that would stream it.
    pools.fetch(target.upstream, request, res, plan.kind === 'stream' ? ANSWER_LIMIT : collectUpTo(plan), (err, answer) => {
      wx.upstreamMs = performance.now() - wx.upstreamStart;
      wx.trace?.upstreamEnd(err, answer?.statusCode);
      if (err || !answer) {
        if (delivery) {
          delivery.release();
          wx.callback = 'released';
        }
        if (!clientGone(err)) upstreamFailed(res, wx, target, err);
        return;
      }
      if (plan.kind === 'stream') {
        endDelivery(wx, delivery!, answer.statusCode, answer.statusCode, answer.headers['content-type'], answer.body);
        if (!orphaned(res, wx, target, answer)) writeAnswer(res, wx, target, answer);
        return;
      }
      /** The gateway's own error for an answer it could not pass on; a callback's is what its retries get. */
      const refusedAnswer = (reason: Reason): void => {
        if (delivery) {
          const own = errorAnswer(wx, reason);
          endDelivery(wx, delivery, answer.statusCode, own.status, own.headers['content-type'], Buffer.from(own.body));
        }
        sendError(res, wx, reason);
      };
      const finish = (outcome: AnswerOutcome): void => {
        if (outcome.kind === 'failed') {
          logger.warn({ request_id: wx.id, route: target.name, why: outcome.why }, 'upstream answer could not be masked');
          refusedAnswer(outcome.reason);
          return;
        }
        if (outcome.maskReport) wx.maskReport = outcome.maskReport;
        if (outcome.passedUnmasked) {
          logger.warn({ request_id: wx.id, route: target.name, why: outcome.passedUnmasked }, 'upstream answer passed unmasked (on_mask_error: pass)');
          wx.reason = 'mask_failed_passed';
          decisions.count('mask_failed_passed');
        }
        if (delivery) {
          endDelivery(wx, delivery, answer.statusCode, outcome.res.statusCode, outcome.res.headers['content-type'], outcome.res.body);
          if (orphaned(res, wx, target, outcome.res)) return;
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
          refusedAnswer('internal_error');
        },
      );
    });
  };

  return (req, res, wx, target, dest, passed, body) => {
    res.once('close', () => accessLog(wx, req.method!, res.statusCode, res.writableFinished));
    forward(req, res, wx, target, dest, passed, body);
  };
}

/** `dest` with its query string replaced by `query` (none when empty). */
export function withQuery(dest: string, query: string): string {
  const q = dest.indexOf('?');
  return (q < 0 ? dest : dest.slice(0, q)) + (query === '' ? '' : `?${query}`);
}

/** A copy of `headers` without `names` in any spelling a CGI backend folds to them (`_` for `-`). */
function withoutHeaders(headers: IncomingMessage['headers'], names: readonly string[]): IncomingMessage['headers'] {
  const out: IncomingMessage['headers'] = {};
  for (const name in headers) if (!names.includes(name.replace(/_/g, '-'))) out[name] = headers[name];
  return out;
}
