// The gateway listener: normalises and routes each request against the snapshot in force, then
// streams it to the route's upstream (forwarder.ts). Everything the gateway answers itself is
// JSON with a stable reason. It serves HTTPS, or, with `server.https: off`, plain HTTP behind a
// TLS-terminating load balancer: then only requests the trusted balancer marks as https pass.
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import Fastify, { LogController, type FastifyReply, type FastifyRequest, type RawServerBase, type RouteGenericInterface } from 'fastify';
import { errorBody, GatewayError, REASONS, type Reason } from '../errors.js';
import { hostOf } from '../net/host.js';
import { normalisePath } from '../net/path.js';
import { resolveClientAddress, type ClientAddress } from '../net/client-address.js';
import { accessLogger, type Logger } from '../observability/logger.js';
import type { Decision, Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import type { RouteTarget, Snapshot } from '../snapshot.js';
import { rateLimitHeaders } from '../guards/rate-limit.js';
import type { CallbackOutcome } from '../guards/callback-types.js';
import type { CompiledCors } from '../guards/cors.js';
import { StoreUnavailableError } from '../store/store.js';
import { forwardErrorReason, type ForwardResponse, type UpstreamPools } from './forwarder.js';
import { plainAnswer } from './redirect-server.js';
import { readBody } from './read-body.js';
import { sendAnswer, type AnswerPlan } from './answer.js';

export interface SnapshotSource {
  readonly current: Snapshot;
}

/** What the gateway learnt about a request, for the access log and the forwarding headers. */
interface RequestState {
  snapshot: Snapshot;
  address: ClientAddress;
  route: string | undefined;
  path: string | undefined;
  reason: Decision | undefined;
  /** The gateway's registry, reached through the request so that sendError can count. */
  decisions: Decisions;
  upstreamStart: number;
  upstreamMs: number | undefined;
  /** The route's CORS guard and the Origin it allows, so the gateway's own errors carry them too. */
  cors: CompiledCors | undefined;
  allowedOrigin: string | undefined;
}

const kState = Symbol('wxgw.request');
type RawWithState = IncomingMessage & { [kState]?: RequestState };

/** Set by genReqId, which Fastify calls for every request before anything else. */
function stateOf(request: { raw: object }): RequestState {
  return (request.raw as RawWithState)[kState]!;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

export interface GatewayServerOptions {
  source: SnapshotSource;
  logger: Logger;
  /** null serves plain HTTP behind a TLS-terminating load balancer (`server.https: off`). */
  tls: HttpsServerOptions | null;
  decisions: Decisions;
  metrics: Metrics;
  /** Shared with the snapshots' login endpoints, so every call to an upstream uses one pool. */
  pools: UpstreamPools;
}

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

/** Any reply, whichever server type produced it: errors are sent the same way everywhere. */
type Reply = FastifyReply<RouteGenericInterface, RawServerBase>;

export function sendError(reply: Reply, reason: Reason, message?: string): void {
  const wx = stateOf(reply.request);
  wx.reason = reason;
  wx.decisions.count(reason);
  // A page can only read the reason (a 429, a 401) when the error carries the route's CORS answer.
  if (wx.cors) {
    reply.header('vary', 'Origin');
    if (wx.allowedOrigin !== undefined) {
      reply.header('access-control-allow-origin', wx.allowedOrigin);
      for (const [name, value] of wx.cors.actualHeaders) reply.header(name, value);
    }
  }
  reply
    .code(REASONS[reason].status)
    .headers(wx.snapshot.securityHeaders)
    .header('content-type', 'application/json; charset=utf-8')
    .header('x-request-id', reply.request.id)
    .send(errorBody(reason, reply.request.id, message));
}

/**
 * Whether the nearest proxy says the client spoke https: the rightmost X-Forwarded-Proto entry is
 * the one the trusted balancer added; entries to its left came from further away.
 */
function forwardedHttps(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const header = Array.isArray(value) ? value[value.length - 1]! : value;
  const comma = header.lastIndexOf(',');
  return (comma < 0 ? header : header.slice(comma + 1)).trim().toLowerCase() === 'https';
}

export function createGatewayServer(opts: GatewayServerOptions) {
  const { source, logger, decisions, metrics } = opts;
  const limits = source.current.policy.server.limits;

  const access = accessLogger(logger);
  const round = (ms: number): number => Math.round(ms * 100) / 100;
  const logAccess = (
    request: { id: string; method: string; raw: object },
    reply: { statusCode: number; elapsedTime: number; raw: { writableFinished: boolean } },
  ): void => {
    const wx = stateOf(request);
    // A response that never finished was cut short by the client going away.
    const finished = reply.raw.writableFinished;
    if (!finished && wx.reason === undefined) {
      wx.reason = 'client_closed';
      decisions.count('client_closed');
    }
    const status = finished ? reply.statusCode : REASONS.client_closed.status;
    const routeMetrics = metrics.route(wx.route);
    routeMetrics.request(request.method, status);
    routeMetrics.duration.observe(reply.elapsedTime / 1000);
    if (wx.upstreamMs !== undefined) routeMetrics.upstreamDuration.observe(wx.upstreamMs / 1000);
    access.info(
      {
        request_id: request.id,
        route: wx.route,
        method: request.method,
        path: wx.path,
        status,
        reason: wx.reason,
        client_ip: wx.address.client,
        upstream_ms: wx.upstreamMs === undefined ? undefined : round(wx.upstreamMs),
        total_ms: round(reply.elapsedTime),
      },
      'request',
    );
  };

  // Node checks these timeouts on a timer that defaults to 30 s, which would stretch a 1 s
  // limit thirtyfold; the server is built here to check at a quarter of the shortest limit.
  const serverOptions = {
    requestTimeout: limits.request_timeout,
    headersTimeout: limits.headers_timeout,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, limits.headers_timeout / 4)),
    // Longer than the 60 s idle timeout of common load balancers, so they close first.
    keepAliveTimeout: 72_000,
  };
  const tls = opts.tls;
  const app = Fastify({
    // Fastify types its server as http.Server either way; both factories fit its handler.
    serverFactory: (handle) =>
      tls ? createHttpsServer({ ...tls, ...serverOptions }, handle) : createHttpServer(serverOptions, handle),
    loggerInstance: logger,
    // Fastify would bind a child logger to every request; our lines carry request_id
    // themselves, and a pino child per request costs more than the access line.
    childLoggerFactory: (parent) => parent,
    // The access log is ours: one line per request, written in onResponse.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    // The client address and request id are settled once, before routing, from the snapshot
    // in force, so that every answer (errors included) carries the same id.
    genReqId(raw: RawWithState) {
      const snapshot = source.current;
      const address = resolveClientAddress(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], snapshot.trusted);
      raw[kState] = {
        snapshot,
        address,
        route: undefined,
        path: undefined,
        reason: undefined,
        decisions,
        upstreamStart: 0,
        upstreamMs: undefined,
        cors: undefined,
        allowedOrigin: undefined,
      };
      const given = raw.headers['x-request-id'];
      return address.peerTrusted && typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Fastify refuses some targets before routing (e.g. a malformed percent-escape); no hook
    // runs for these, so the access-log line is written here.
    frameworkErrors(err, request, reply) {
      sendError(reply, err.code === 'FST_ERR_BAD_URL' ? 'path_invalid' : 'bad_request');
      logAccess(request, reply);
    },
    clientErrorHandler(err: NodeJS.ErrnoException, socket) {
      if (!socket.writable) return;
      const reason: Reason =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'request_timeout'
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? 'headers_too_large'
            : 'bad_request';
      decisions.count(reason);
      const id = randomUUID();
      const body = errorBody(reason, id);
      const { status } = REASONS[reason];
      let security = '';
      for (const [name, value] of Object.entries(source.current.securityHeaders)) security += `${name}: ${value}\r\n`;
      socket.end(
        `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n${security}` +
          `x-request-id: ${id}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    },
  });

  if (!tls) {
    // Plain HTTP: proxied only when the socket peer is a trusted proxy (the TLS-terminating load
    // balancer) stating https; anyone else's X-Forwarded-Proto is ignored, so a client cannot
    // claim https to skip the redirect. Decided before the body is read, like the redirect server.
    app.addHook('onRequest', (request, reply, done) => {
      const wx = stateOf(request);
      if (wx.address.peerTrusted && forwardedHttps(request.headers['x-forwarded-proto'])) {
        done();
        return;
      }
      const answer = plainAnswer(request.raw, source, request.id);
      wx.reason = answer.decision;
      decisions.count(answer.decision);
      request.raw.resume();
      reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
  }

  // Bodies are streamed, never parsed: the parser hands the stream on, bounded by the policy.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    const limit = stateOf(request).snapshot.policy.server.limits.body;
    const declared = Number(request.headers['content-length']);
    if (declared > limit) {
      done(new GatewayError('body_too_large'), undefined);
      return;
    }
    done(null, Number.isFinite(declared) ? payload : payload.pipe(new BodyLimit(limit)));
  });

  const pools = opts.pools;

  /** What the guards decided for the forwarded request. */
  interface Forwarding {
    /** Replaces the client's body (a decrypted callback). */
    body?: Buffer;
    added?: Record<string, string>;
    answerAdded?: Record<string, string>;
    answer: AnswerPlan;
  }

  const forward = (request: FastifyRequest, reply: Reply, target: RouteTarget, path: string, how: Forwarding): void => {
    const wx = stateOf(request);
    const body = how.body ?? (request.body as Readable | undefined);
    // A client that hangs up before the answer should not keep an upstream request running.
    const abort = new AbortController();
    const onClientGone = (): void => {
      if (!reply.raw.headersSent) abort.abort();
    };
    const socket = request.raw.socket;
    socket.once('close', onClientGone);
    wx.upstreamStart = performance.now();
    pools.forward(
      target.upstream,
      {
        method: request.method,
        path,
        headers: request.headers,
        body,
        timeout: target.timeout,
        context: {
          id: request.id,
          address: wx.address,
          hasBody: body !== undefined,
          response: target.response,
          allowedOrigin: wx.allowedOrigin,
          reserved: wx.snapshot.reservedHeaders,
          added: how.added,
          answerAdded: how.answerAdded,
        },
        signal: abort.signal,
      },
      (err, res) => {
        socket.off('close', onClientGone);
        wx.upstreamMs = performance.now() - wx.upstreamStart;
        if (abort.signal.aborted) {
          // Nothing was sent, so Fastify runs no onResponse hook: the line is written here.
          res?.body.destroy();
          logAccess(request, reply);
          return;
        }
        if (err || !res) {
          const reason = forwardErrorReason(err);
          if (reason !== 'body_too_large') {
            reply.log.warn({ err, route: target.name }, 'upstream request failed');
            metrics.route(target.name).upstreamError(reason);
          }
          sendError(reply, reason);
          return;
        }
        if (how.answer.kind === 'stream') {
          streamAnswer(reply, target, res);
          return;
        }
        sendAnswer(how.answer, res, request.method).then(
          (outcome) => {
            if (outcome.kind === 'stream') streamAnswer(reply, target, outcome.res);
            else if (outcome.kind === 'failed') {
              reply.log.warn({ route: target.name, why: outcome.why }, 'upstream answer could not be masked');
              sendError(reply, outcome.reason);
            } else {
              if (outcome.passedUnmasked) {
                reply.log.warn({ route: target.name, why: outcome.passedUnmasked }, 'upstream answer passed unmasked (on_mask_error: pass)');
                decisions.count('mask_failed_passed');
              }
              streamAnswer(reply, target, outcome.res, outcome.buffered);
            }
          },
          (answerErr: unknown) => {
            reply.log.error({ err: answerErr, route: target.name }, 'upstream answer handling failed');
            res.body.destroy();
            sendError(reply, 'internal_error');
          },
        );
      },
    );
  };

  /**
   * Writes an answer straight onto the socket: Fastify's reply pipeline (send, onSend hooks,
   * stream bookkeeping) cost a tenth of the CPU per proxied request here. A body that fails
   * mid-way (the upstream, or masking a stream) cuts the connection: the client never gets a
   * truncated document that looks complete.
   */
  const streamAnswer = (reply: Reply, target: RouteTarget, res: ForwardResponse, buffered?: Buffer): void => {
    reply.hijack();
    const out = reply.raw;
    out.writeHead(res.statusCode, res.headers);
    if (buffered) {
      out.end(buffered);
      return;
    }
    res.body.on('error', (bodyErr: Error & { reason?: Reason }) => {
      const reason = bodyErr.reason;
      if (reason === 'mask_failed') {
        stateOf(reply.request).reason = reason;
        decisions.count(reason);
        reply.log.warn({ route: target.name, why: bodyErr.message }, 'upstream answer could not be masked mid-stream; connection cut');
      } else reply.log.warn({ err: bodyErr, route: target.name }, 'upstream response failed mid-body');
      out.destroy(bodyErr);
    });
    res.body.pipe(out);
  };

  /** Largest login request body: `{"code": "..."}` and little else. */
  const LOGIN_BODY_LIMIT = 16 * 1024;

  /**
   * The guards that need the body, the store or a token, in the order of ARCHITECTURE.md:
   * signed callback, identity, rate limits; then the login answer or the forwarded request.
   */
  const guarded = async (request: FastifyRequest, reply: Reply, target: RouteTarget, dest: string): Promise<void> => {
    const wx = stateOf(request);
    const snapshot = wx.snapshot;
    const how: Forwarding = { answer: target.mask ? { kind: 'mask', mask: target.mask, failOpen: target.maskFailOpen } : { kind: 'stream' } };
    const added: Record<string, string> = {};

    if (target.callback) {
      const body = await readBody(request.body as Readable | undefined, target.callback.maxBody);
      const q = request.raw.url!.indexOf('?');
      const query = new URLSearchParams(q < 0 ? '' : request.raw.url!.slice(q + 1));
      const outcome: CallbackOutcome = await target.callback.check({ method: request.method, query, headers: request.headers, body });
      if (outcome.kind === 'refuse') {
        reply.log.warn({ route: target.name, reason: outcome.reason, detail: outcome.detail }, 'callback refused');
        sendError(reply, outcome.reason);
        return;
      }
      if (outcome.kind === 'answer') {
        reply
          .code(outcome.status)
          .headers(snapshot.securityHeaders)
          .header('content-type', outcome.contentType)
          .header('cache-control', 'no-store')
          .header('x-request-id', request.id)
          .send(outcome.body);
        return;
      }
      how.body = outcome.body;
      Object.assign(added, outcome.headers, { 'content-type': outcome.contentType, 'content-length': String(outcome.body.length) });
      if (outcome.sealReply) how.answer = { kind: 'seal', seal: outcome.sealReply };
    }

    let openid: string | undefined;
    if (snapshot.identity && target.kind === 'proxy') {
      const outcome = await snapshot.identity.verify(request.headers);
      if (outcome.kind === 'verified') {
        openid = outcome.openid;
        added[snapshot.identity.upstreamHeader] = openid;
      } else if (target.identityRequired) {
        sendError(reply, outcome.kind === 'refused' ? outcome.reason : 'identity_required');
        return;
      }
    }

    if (target.rateLimit) {
      const rules = target.rateLimit.rules(openid, wx.address.client);
      if (rules.length > 0) {
        try {
          const results = await snapshot.store.hit(rules);
          const headers = rateLimitHeaders(results);
          if (!results.every((r) => r.allowed)) {
            reply.headers(headers);
            sendError(reply, 'rate_limited');
            return;
          }
          how.answerAdded = headers;
        } catch (err) {
          if (!(err instanceof StoreUnavailableError)) throw err;
          if (!snapshot.storeFailOpen) {
            reply.log.warn({ route: target.name, err }, 'rate limit not decided: store unavailable');
            sendError(reply, 'store_unavailable');
            return;
          }
          decisions.count('store_unavailable_allowed');
        }
      }
    }

    if (target.kind === 'login') {
      const body = await readBody(request.body as Readable | undefined, LOGIN_BODY_LIMIT);
      const result = await snapshot.login!.handle(body, { requestId: request.id });
      if (result.kind === 'refused') {
        sendError(reply, result.reason, result.message);
        return;
      }
      if (wx.allowedOrigin !== undefined) {
        reply.header('access-control-allow-origin', wx.allowedOrigin).headers(Object.fromEntries(wx.cors!.actualHeaders));
      }
      reply
        .code(200)
        .headers(snapshot.securityHeaders)
        .headers(how.answerAdded ?? {})
        .header('cache-control', 'no-store')
        .header('content-type', 'application/json; charset=utf-8')
        .header('x-request-id', request.id)
        .send(JSON.stringify(result.body));
      return;
    }

    if (Object.keys(added).length > 0) how.added = added;
    forward(request, reply, target, dest, how);
  };

  const handler = (request: FastifyRequest, reply: Reply): void => {
    const raw = request.raw;
    const wx = stateOf(request);
    const url = raw.url ?? '/';
    const q = url.indexOf('?');
    const normalised = normalisePath(q < 0 ? url : url.slice(0, q));
    if (!normalised.ok) {
      sendError(reply, 'path_invalid', `the request path cannot be normalised safely: ${normalised.why}`);
      return;
    }
    wx.path = normalised.path;
    const headers = raw.headers;
    const origin = headers.origin;
    // A CORS preflight is routed by the method it asks about: a route listing [GET, POST] must
    // answer the preflight for its POST, not refuse OPTIONS with 405.
    const asked = headers['access-control-request-method'];
    const preflight = raw.method === 'OPTIONS' && origin !== undefined && typeof asked === 'string' && asked !== '';
    const method = preflight ? asked : (raw.method ?? 'GET');
    const found = wx.snapshot.routes.lookup(method, hostOf(headers.host) ?? '', normalised.path);
    if (found.kind === 'not_found') {
      sendError(reply, 'route_not_found');
      return;
    }
    if (found.kind === 'method_not_allowed') {
      reply.header('allow', found.allow.join(', '));
      sendError(reply, 'method_not_allowed');
      return;
    }
    const target = found.route.target;
    wx.route = target.name;
    // Cheapest first: a refused address costs nothing else, not even a preflight answer.
    if (!target.ipAllow.allows(wx.address.client)) {
      sendError(reply, 'ip_not_allowed');
      return;
    }
    const cors = target.response.cors;
    if (preflight) {
      // Preflights are the gateway's to answer and never reach the upstream.
      if (!cors) {
        sendError(reply, 'cors_origin_not_allowed', 'this route allows no cross-origin requests');
        return;
      }
      const allowed = cors.allowOrigin(origin);
      if (allowed === undefined) {
        sendError(reply, 'cors_origin_not_allowed');
        return;
      }
      reply
        .code(204)
        .headers(wx.snapshot.securityHeaders)
        .headers(cors.preflightHeaders)
        .header('access-control-allow-origin', allowed)
        .header('x-request-id', request.id)
        .send();
      return;
    }
    if (cors) {
      wx.cors = cors;
      wx.allowedOrigin = cors.allowOrigin(origin);
    }
    const dest = target.upstream.basePath + normalised.path + (q < 0 ? '' : url.slice(q));
    // Routes without stateful guards take the direct path, with no promise in between.
    if (target.callback || target.rateLimit || target.kind === 'login' || wx.snapshot.identity) {
      guarded(request, reply, target, dest).catch((err: unknown) => {
        if (reply.sent || reply.raw.headersSent) {
          reply.log.error({ err, route: target.name }, 'request failed after its answer started');
          return;
        }
        if (err instanceof GatewayError) sendError(reply, err.reason, err.message);
        // A callback whose nonce cannot be recorded could be a replay: refused whatever
        // on_unavailable says (that choice covers rate limits only).
        else if (err instanceof StoreUnavailableError) {
          reply.log.warn({ err, route: target.name }, 'request refused: store unavailable');
          sendError(reply, 'store_unavailable');
        } else {
          reply.log.error({ err, route: target.name }, 'request failed inside the gateway');
          sendError(reply, 'internal_error');
        }
      });
      return;
    }
    forward(request, reply, target, dest, { answer: target.mask ? { kind: 'mask', mask: target.mask, failOpen: target.maskFailOpen } : { kind: 'stream' } });
  };

  app.route({ method: METHODS, url: '*', handler });
  app.setNotFoundHandler(handler);

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, _request, reply) => {
    if (err instanceof GatewayError) sendError(reply, err.reason);
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) sendError(reply, 'bad_request', err.message);
    else {
      reply.log.error({ err }, 'request failed inside the gateway');
      sendError(reply, 'internal_error');
    }
  });

  app.addHook('onResponse', (request, reply, done) => {
    logAccess(request, reply);
    done();
  });

  return app;
}
