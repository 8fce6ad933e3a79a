// The gateway listener. dispatch.ts routes each request once against the snapshot in force and
// runs its route's guards: what they let through is forwarded on the direct path (proxied.ts);
// what the gateway answers itself (refusals, preflights, the login answer, a callback's echo) is
// Fastify's to write. Everything the gateway answers itself is JSON with a stable reason. It serves HTTPS, or, with
// `server.https: off`, plain HTTP behind a TLS-terminating load balancer: then only requests the
// trusted balancer marks as https pass.
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { LogController, type FastifyReply, type RawServerBase, type RouteGenericInterface } from 'fastify';
import { errorBody, GatewayError, REASONS, type Reason } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import type { Tracing } from '../observability/tracing.js';
import { createAccessLog, createParserRefusalLog } from './access-log.js';
import { errorAnswer, ownAnswer } from './own-answer.js';
import type { UpstreamPools } from './forwarder.js';
import { createProxiedPath } from './proxied.js';
import { plainAnswer } from './redirect-server.js';
import { requestState, type RequestState } from './request-state.js';
import { createDispatch, type SnapshotSource } from './dispatch.js';
import { createWebSockets, wantsWebSocket } from './websocket.js';
import { createH2Server } from './h2-server.js';

export type { SnapshotSource };

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
  tracing?: Tracing;
}

/** Any reply, whichever server type produced it: errors are sent the same way everywhere. */
type Reply = FastifyReply<RouteGenericInterface, RawServerBase>;

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

/** Body bytes of an answer the gateway wrote itself: its Content-Length, none for HEAD. */
function ownBytes(method: string, reply: Reply): number {
  return method === 'HEAD' ? 0 : Number(reply.getHeader('content-length') ?? 0);
}

export function createGatewayServer(opts: GatewayServerOptions) {
  const { source, logger, decisions, metrics } = opts;
  const limits = source.current.policy.server.limits;
  const accessLog = createAccessLog(logger, decisions, metrics);
  const parserRefusalLog = createParserRefusalLog(logger);
  const proxied = createProxiedPath({ logger, decisions, metrics, pools: opts.pools, accessLog });
  const stateOf = (raw: IncomingMessage): RequestState => requestState(raw, source.current);

  const sendError = (reply: Reply, reason: Reason, message?: string, extra?: Record<string, string>): void => {
    const wx = stateOf(reply.request.raw as IncomingMessage);
    wx.reason = reason;
    decisions.count(reason);
    const answer = errorAnswer(wx, reason, message, extra);
    reply.code(answer.status).headers(answer.headers).send(answer.body);
  };

  const tls = opts.tls;
  // Plain HTTP: proxied only when the socket peer is a trusted proxy (the TLS-terminating load
  // balancer) stating https; anyone else's X-Forwarded-Proto is ignored, so a client cannot
  // claim https to skip the redirect. Decided before the body is read, like the redirect server.
  const viaTrustedHttps = (raw: IncomingMessage, wx: RequestState): boolean =>
    tls !== null || (wx.address.peerTrusted && forwardedHttps(raw.headers['x-forwarded-proto']));

  const dispatch = createDispatch({ source, logger, decisions, proxied, tracing: opts.tracing, servable: viaTrustedHttps });
  const websockets = createWebSockets({ source, logger, decisions, metrics, accessLog, servable: viaTrustedHttps });

  // Node checks these timeouts on a timer that defaults to 30 s, which would stretch a 1 s
  // limit thirtyfold; the server is built here to check at a quarter of the shortest limit.
  const serverOptions = {
    handshakeTimeout: limits.handshake_timeout,
    requestTimeout: limits.request_timeout,
    headersTimeout: limits.headers_timeout,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, limits.headers_timeout / 4)),
    // Longer than the 60 s idle timeout of common load balancers, so they close first.
    keepAliveTimeout: 72_000,
    // Plain HTTP: an Upgrade to anything but WebSocket (h2c) is served as the plain request it
    // also is. Over TLS every upgrade goes to the WebSocket handshake, which refuses any other
    // kind: h2 is offered by ALPN and h2c is not allowed over TLS (RFC 9113 §3.1), and the h2
    // listener's HTTP/1.1 side would pass them all anyway.
    ...(tls ? {} : { shouldUpgradeCallback: wantsWebSocket }),
  };
  // HTTP/2 beside HTTP/1.1 on the HTTPS listener (h2-server.ts), unless `server.http2: false`.
  const h2 = (tlsOptions: HttpsServerOptions, handle: (req: IncomingMessage, res: ServerResponse) => void) =>
    createH2Server(
      {
        tls: tlsOptions,
        http1: serverOptions,
        maxStreams: limits.http2_streams,
        resets: () => source.current.policy.server.limits.http2_resets,
        onCalm: (session) =>
          logger.warn({ client_ip: session.socket?.remoteAddress, limit: source.current.policy.server.limits.http2_resets }, 'HTTP/2 connection reset too many streams; closed with GOAWAY ENHANCE_YOUR_CALM'),
        onRequestTimeout: (req, res) => {
          const wx = stateOf(req);
          wx.reason = 'request_timeout';
          decisions.count('request_timeout');
          const answer = errorAnswer(wx, 'request_timeout');
          res.writeHead(answer.status, answer.headers);
          res.end(answer.body, () => res.destroy());
        },
      },
      handle,
    );
  const app = Fastify({
    // Fastify types its server as http.Server either way; every factory fits its handler.
    serverFactory: (handle) =>
      websockets.attach(
        !tls
          ? createHttpServer(serverOptions, dispatch(handle))
          : source.current.policy.server.http2
            ? h2(tls, dispatch(handle))
            : createHttpsServer({ ...tls, ...serverOptions }, dispatch(handle)),
      ),
    loggerInstance: logger,
    // Fastify would bind a child logger to every request; our lines carry request_id
    // themselves, and a pino child per request costs more than the access line.
    childLoggerFactory: (parent) => parent,
    // The access log is ours: one line per request, written in onResponse.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    // The request's state, id included, was settled when it arrived (request-state.ts).
    genReqId: (raw: IncomingMessage) => stateOf(raw).id,
    // Fastify refuses some targets before routing (e.g. a malformed percent-escape); no hook
    // runs for these, so the access-log line is written here.
    frameworkErrors(err, request, reply) {
      sendError(reply, err.code === 'FST_ERR_BAD_URL' ? 'path_invalid' : 'bad_request');
      const wx = stateOf(request.raw);
      wx.bytesOut = ownBytes(request.method, reply);
      accessLog(wx, request.method, reply.statusCode, reply.raw.writableFinished);
    },
    clientErrorHandler(err: NodeJS.ErrnoException, socket) {
      // A connection that failed in its TLS handshake (timed out, bad hello) has no secure channel
      // to answer on: a write would wait forever and keep the descriptor. Close it.
      if (!socket.writable || err.code?.startsWith('ERR_TLS_') || err.code?.startsWith('ERR_SSL_')) {
        socket.destroy();
        return;
      }
      const reason: Reason =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'request_timeout'
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? 'headers_too_large'
            : 'bad_request';
      decisions.count(reason);
      metrics.route(undefined).refusal(reason);
      const id = randomUUID();
      const body = errorBody(reason, id);
      const { status } = REASONS[reason];
      let security = '';
      for (const [name, value] of Object.entries(source.current.securityHeaders)) security += `${name}: ${value}\r\n`;
      const length = Buffer.byteLength(body);
      socket.end(
        `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n${security}` +
          `${source.current.policy.server.request_id.header}: ${id}\r\ncontent-length: ${length}\r\n\r\n${body}`,
      );
      parserRefusalLog(socket as Socket, id, status, reason, length);
    },
  });

  if (!tls) {
    app.addHook('onRequest', (request, reply, done) => {
      const wx = stateOf(request.raw);
      if (viaTrustedHttps(request.raw, wx)) {
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

  // Requests reaching Fastify are answered without their body, which is never read or parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const handler = (request: { raw: IncomingMessage }, reply: Reply): void => {
    const wx = stateOf(request.raw);
    const verdict = wx.verdict;
    if (verdict === undefined) {
      // dispatch.ts decides every request it hands over; reaching this is a bug.
      logger.error({ request_id: wx.id, route: wx.route }, 'a request reached the gateway answer path undecided');
      sendError(reply, 'internal_error');
    } else if (verdict.kind === 'refuse') sendError(reply, verdict.reason, verdict.message, verdict.headers);
    else if (verdict.body === undefined) {
      reply.code(verdict.status).headers(wx.snapshot.securityHeaders).headers(verdict.headers).header(wx.snapshot.policy.server.request_id.header, wx.id).send();
    } else {
      const answer = ownAnswer(wx, verdict.status, verdict.contentType ?? 'application/json; charset=utf-8', verdict.body, verdict.headers);
      reply.code(answer.status).headers(answer.headers).send(answer.body);
    }
  };
  app.route({ method: METHODS, url: '*', handler });
  app.setNotFoundHandler(handler);

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
    if (err instanceof GatewayError) sendError(reply, err.reason);
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) sendError(reply, 'bad_request', err.message);
    else {
      logger.error({ request_id: request.id, err }, 'request failed inside the gateway');
      sendError(reply, 'internal_error');
    }
  });

  // Closing runs once the drain delay is over: open WebSockets are told 1001 (going away).
  app.addHook('preClose', (done) => {
    websockets.closeAll();
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const wx = stateOf(request.raw);
    wx.bytesOut = ownBytes(request.method, reply);
    accessLog(wx, request.method, reply.statusCode, reply.raw.writableFinished);
    done();
  });

  return app;
}
