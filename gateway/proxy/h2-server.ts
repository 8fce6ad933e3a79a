// The HTTPS listener speaking HTTP/2 beside HTTP/1.1 (ALPN h2 and http/1.1): Node's
// createSecureServer with allowHTTP1, so a client that asks for h2 gets it and every other one
// is served exactly as by https.createServer, with the same timeouts. What HTTP/2 adds is bounded
// here: streams per connection, the header list, stream resets (rapid reset, CVE-2023-44487),
// idle connections, and the time a request's body may take; draining sends GOAWAY.
//
//   createH2Server(opts, handler) -> the listener's server
//   goAway(server)                -> GOAWAY to every HTTP/2 connection: in-flight streams finish, no new ones
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { maxHeaderSize } from 'node:http';
import { constants, createSecureServer, type Http2SecureServer, type SecureServerOptions, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { GatewayH2Request, GatewayH2Response } from './h2-messages.js';

/** Window over which a connection's stream resets are counted (`server.limits.http2_resets`). */
export const RESET_WINDOW_MS = 10_000;

/** Counts one connection's client-reset streams in fixed windows; says when the budget is spent. */
export class ResetBudget {
  private windowStart: number;
  private count = 0;

  constructor(
    private readonly limit: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.windowStart = now();
  }

  /** Counts one reset; true once more than `limit` fell in one window. */
  spend(): boolean {
    const t = this.now();
    if (t - this.windowStart >= RESET_WINDOW_MS) {
      this.windowStart = t;
      this.count = 0;
    }
    return ++this.count > this.limit;
  }
}

export interface H2ServerOptions {
  tls: HttpsServerOptions;
  /** The HTTP/1.1 timeouts, as https.createServer takes them; they hold for HTTP/1.1 clients of this listener. */
  http1: {
    handshakeTimeout: number;
    requestTimeout: number;
    headersTimeout: number;
    connectionsCheckingInterval: number;
    keepAliveTimeout: number;
  };
  /** SETTINGS_MAX_CONCURRENT_STREAMS (`server.limits.http2_streams`). */
  maxStreams: number;
  /** Resets a connection may make per RESET_WINDOW_MS, read as each connection arrives (reloadable). */
  resets(): number;
  /** A connection went past its reset budget and was closed. */
  onCalm(session: ServerHttp2Session): void;
  /** A request over HTTP/2 whose body did not arrive within `requestTimeout` and whose answer has not started. */
  onRequestTimeout(req: IncomingMessage, res: ServerResponse): void;
}

const kSessions = Symbol('wxgw.h2.sessions');
const kBudget = Symbol('wxgw.h2.budget');
const kCalm = Symbol('wxgw.h2.calm');
type Tracked = Http2SecureServer & { [kSessions]?: Set<ServerHttp2Session> };
/** A connection with its reset budget, and what closes it once spent. */
type Guarded = ServerHttp2Session & { [kBudget]?: ResetBudget; [kCalm]?: () => void };

/** A stream the client reset before it was answered; one the gateway cut itself is already destroyed. */
function onAborted(this: ServerHttp2Stream): void {
  if (this.destroyed) return;
  const session = this.session as Guarded | undefined;
  if (session?.[kBudget]?.spend()) session[kCalm]!();
}

function onStream(stream: ServerHttp2Stream): void {
  stream.once('aborted', onAborted);
}

export function createH2Server(opts: H2ServerOptions, handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const settings = {
    maxConcurrentStreams: opts.maxStreams,
    // The same bound as an HTTP/1.1 request's head (Node's max header size, 16 KB unless
    // --max-http-header-size says otherwise): announced to the client and held by nghttp2.
    maxHeaderListSize: maxHeaderSize,
  };
  const options: SecureServerOptions = {
    ...opts.tls,
    allowHTTP1: true,
    handshakeTimeout: opts.http1.handshakeTimeout,
    // Node applies these to the HTTP/1.1 connections of an allowHTTP1 server.
    ...({ http1Options: opts.http1 } as object),
    settings,
    Http2ServerRequest: GatewayH2Request,
    Http2ServerResponse: GatewayH2Response as never,
  };
  const server = createSecureServer(options, handler as never) as Tracked;
  const sessions = new Set<ServerHttp2Session>();
  server[kSessions] = sessions;
  server.on('session', (session: Guarded) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session[kBudget] = new ResetBudget(opts.resets());
    session[kCalm] = () => {
      if (session.destroyed) return;
      opts.onCalm(session);
      // destroy(code) sends GOAWAY with that code; typed as destroy(error, code), where an
      // undefined error would be taken for NO_ERROR.
      (session.destroy as unknown as (code: number) => void).call(session, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    };
    session.on('stream', onStream);
    // An HTTP/2 connection idle as long as an HTTP/1.1 keep-alive one is closed the same way:
    // GOAWAY, streams still open finish.
    session.setTimeout(opts.http1.keepAliveTimeout, () => session.close());
  });
  // Node's requestTimeout holds HTTP/1.1 requests only; an HTTP/2 stream gets the same bound on
  // the time from its headers to the end of its body. Bodiless requests need no timer.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!(req instanceof GatewayH2Request) || req.stream.endAfterHeaders) return;
    const timer = setTimeout(() => {
      if (res.headersSent) res.destroy();
      else opts.onRequestTimeout(req, res);
    }, opts.http1.requestTimeout);
    const done = (): void => clearTimeout(timer);
    req.once('end', done);
    res.once('close', done);
  });
  // The drain (runtime/listeners.ts) cuts what is left at shutdown_timeout through this method,
  // which Node's HTTP/2 server lacks; its HTTP/1.1 sockets it destroys itself.
  (server as unknown as Server).closeAllConnections = () => {
    for (const session of sessions) session.destroy();
  };
  return server as unknown as Server;
}

/** GOAWAY to every HTTP/2 connection of `server`: streams in flight finish, new ones go elsewhere. */
export function goAway(server: Server): void {
  const sessions = (server as unknown as Tracked)[kSessions];
  if (sessions) for (const session of sessions) session.close();
}
