// The gateway's listeners: bound in the order the policy names them, each failure named by the
// policy line that asked for the address, and closed together at shutdown without cutting the
// requests in flight short.
//
//   bindTraffic(open, deps)                     the HTTPS listener and the plain-HTTP one
//   bindAdmin(open, at, pos, readiness, metrics, drain)
//   drain(open, state, times, logger)           say draining, wait, stop accepting, wait, cut the rest
// Each bound listener is pushed on `open` as soon as it listens, so a later failure can close it.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { ServerHttp2Stream } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenAddress, SourcePos } from '../types/policy.js';
import type { Snapshot } from '../snapshot.js';
import { liveTlsServerOptions, type HandshakeTls } from '../tls/server-options.js';
import type { UpstreamPools } from '../proxy/forwarder.js';
import { createGatewayServer, type SnapshotSource } from '../proxy/gateway-server.js';
import { goAway } from '../proxy/h2-server.js';
import { createRedirectServer } from '../proxy/redirect-server.js';
import { createEgressServer } from '../egress/server.js';
import type { Egress } from '../egress/egress.js';
import { createAdminServer, type AsyncReadiness, type MetricsSource, type PolicyInForce, type Readiness } from '../observability/admin-server.js';
import type { Decisions } from '../observability/decisions.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Tracing } from '../observability/tracing.js';

const WHY: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no interface of this machine has that address',
};

/** A listener that could not bind: the address, the policy line that asked for it, the system's code. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  /** The system error code (`EADDRINUSE`...), undefined when the failure had none. */
  readonly code: string | undefined;

  constructor(
    readonly address: ListenAddress,
    readonly pos: SourcePos,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const why = (code !== undefined && WHY[code]) || String(cause);
    super(`cannot listen on ${address.host}:${address.port} (${pos.path} at ${pos.file}:${pos.line}:${pos.col}): ${why}`, { cause });
    this.code = code;
  }
}

export interface Listener {
  readonly name: 'https' | 'http' | 'admin' | 'egress';
  readonly server: Server;
  /** Every TCP connection the listener holds, those still in their TLS handshake included. */
  readonly sockets: ReadonlySet<Socket>;
  /** The sockets HTTP is spoken on: the TLS sockets past their handshake, or the TCP ones. */
  readonly httpSockets: ReadonlySet<Socket>;
  close(): Promise<void>;
}

/** Set once at SIGTERM: /readyz reads it, and every answer from then on says `Connection: close`. */
export interface DrainState {
  draining: boolean;
}

export interface TrafficDeps {
  readonly source: SnapshotSource;
  readonly drain: DrainState;
  readonly logger: Logger;
  readonly decisions: Decisions;
  readonly metrics: Metrics;
  readonly pools: UpstreamPools;
  readonly tracing?: Tracing;
}

/**
 * Follows a server's connections from the TCP accept on: Node's own list (closeAllConnections)
 * only knows a TLS connection once its handshake is done, so one stuck in it would hold exit.
 */
function tracked(server: Server, event: 'connection' | 'secureConnection'): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on(event, (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

/**
 * While draining, each answer tells a keep-alive client to close (Node writes `Connection: close`
 * and ends the connection after it when shouldKeepAlive is off at writeHead), so the client's next
 * request goes out on a new connection, through the balancer, instead of on one about to close.
 * It is set as the request arrives, before any handler: the forwarded path, the masked one and the
 * gateway's own answers all write their head later.
 */
function closeWhileDraining(server: Server, drain: DrainState): void {
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!drain.draining) return;
    res.shouldKeepAlive = false;
    // HTTP/2's Connection: close is GOAWAY: this stream and those before it finish, no new ones.
    if (req.httpVersionMajor === 2) (req as unknown as { stream: ServerHttp2Stream }).stream.session?.close();
  });
}

/**
 * Handshakes for the metrics: each completed one by protocol, each failed one by its reason. A
 * listener of its own beside Fastify's clientErrorHandler, which closes the failed socket.
 */
function countHandshakes(server: Server, metrics: Metrics): void {
  server.on('secureConnection', (socket: TLSSocket) => metrics.handshake(socket));
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => metrics.handshakeFailed(err));
}

/** Binds what every listener shares: draining answers and connection tracking. */
function listener(name: Listener['name'], server: Server, drain: DrainState, close: () => Promise<void>, tls = false): Listener {
  closeWhileDraining(server, drain);
  const sockets = tracked(server, 'connection');
  return { name, server, sockets, httpSockets: tls ? tracked(server, 'secureConnection') : sockets, close };
}

function listen(server: Server, at: ListenAddress, pos: SourcePos): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown): void => reject(new ListenError(at, pos, err));
    server.once('error', fail);
    server.listen(at.port, at.host, () => {
      server.off('error', fail);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/** The snapshot's handshake data; a policy with `server.https` on always has certificates. */
function handshake(snapshot: Snapshot): HandshakeTls {
  if (!snapshot.tls) throw new Error('the HTTPS listener is on but the policy in force has no certificates');
  return snapshot.tls;
}

/**
 * Node serves a client that sends no SNI from the server's own default context, which no callback
 * reads. It is brought up to date with the snapshot in force as each connection arrives, before
 * the TLS layer takes the socket: one comparison per connection, one new context per reload.
 */
function followDefaultContext(server: HttpsServer, source: SnapshotSource): void {
  let served = source.current.tls;
  server.prependListener('connection', () => {
    const now = source.current.tls;
    if (now === served || now === undefined) return;
    served = now;
    server.setSecureContext(now.defaultOptions);
  });
}

/** Binds the traffic listeners the policy names; returns their addresses. */
export async function bindTraffic(open: Listener[], deps: TrafficDeps): Promise<{ https: AddressInfo | undefined; http: AddressInfo | undefined }> {
  const { source, logger, decisions, drain } = deps;
  const { server } = source.current.policy;
  let https: AddressInfo | undefined;
  let http: AddressInfo | undefined;
  if (server.https) {
    const { listen: at, pos } = server.https;
    const app = createGatewayServer({ ...deps, tls: liveTlsServerOptions(() => handshake(source.current)) });
    followDefaultContext(app.server as unknown as HttpsServer, source);
    const bound = listener('https', app.server, drain, () => app.close(), true);
    countHandshakes(app.server, deps.metrics);
    // Fastify names the scheme by its own `https` option, which the server factory bypasses.
    const listenTextResolver = (address: string): string => `gateway listener bound at ${address.replace(/^http:/, 'https:')}`;
    await app.listen({ host: at.host, port: at.port, listenTextResolver }).catch((err: unknown) => {
      throw new ListenError(at, pos, err);
    });
    open.push(bound);
    https = app.server.address() as AddressInfo;
  }
  // With https off the policy guarantees a redirect listener, which then serves the gateway
  // itself for requests a trusted load balancer received over https.
  if (server.http && server.http.mode === 'redirect') {
    const { listen: at, pos } = server.http;
    if (server.https) {
      const plain = createRedirectServer(source, logger, decisions, deps.metrics);
      const bound = listener('http', plain, drain, () => closeServer(plain));
      http = await listen(plain, at, pos);
      open.push(bound);
    } else {
      const app = createGatewayServer({ ...deps, tls: null });
      const bound = listener('http', app.server, drain, () => app.close());
      await app.listen({ host: at.host, port: at.port }).catch((err: unknown) => {
        throw new ListenError(at, pos, err);
      });
      open.push(bound);
      http = app.server.address() as AddressInfo;
    }
  }
  return { https, http };
}

export async function bindAdmin(
  open: Listener[],
  at: ListenAddress,
  pos: SourcePos,
  readiness: Readiness | AsyncReadiness,
  registry: MetricsSource,
  drain: DrainState = { draining: false },
  policy?: () => PolicyInForce,
): Promise<AddressInfo> {
  const admin = createAdminServer(readiness, registry, policy);
  const bound = listener('admin', admin, drain, () => closeServer(admin));
  const address = await listen(admin, at, pos);
  open.push(bound);
  return address;
}

/** The WeChat API egress listener (server.egress): plain HTTP for the backend's SDK. */
export async function bindEgress(open: Listener[], at: ListenAddress, pos: SourcePos, egress: Egress, source: SnapshotSource, drain: DrainState, now?: () => number): Promise<AddressInfo> {
  const server = createEgressServer(egress, source, now);
  const bound = listener('egress', server, drain, () => closeServer(server));
  const address = await listen(server, at, pos);
  open.push(bound);
  return address;
}

export interface DrainTimes {
  /** Milliseconds the listeners keep accepting after draining began (server.drain_delay). */
  delayMs: number;
  /** Milliseconds requests in flight get once the listeners stopped accepting (server.shutdown_timeout). */
  timeoutMs: number;
}

/**
 * Requests in flight when draining begins say `Connection: close` too, unless their head is
 * already out (closeWhileDraining marks those that arrive later), and HTTP/2 connections get
 * GOAWAY. `_httpMessage` is Node's own field for the response being written on a socket; nothing
 * public reaches it from the socket.
 */
function closeInFlight(open: readonly Listener[]): void {
  for (const l of open) {
    goAway(l.server);
    for (const socket of l.httpSockets) {
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (res && !res.headersSent) res.shouldKeepAlive = false;
    }
  }
}

/**
 * Shuts the listeners down without a client noticing: /readyz says `draining` at once and every
 * answer says `Connection: close`, while the listeners keep accepting for `delayMs` so the load
 * balancer stops sending here first. Then they stop accepting and requests in flight get
 * `timeoutMs` (counted from the end of the delay) to finish; a keep-alive connection whose request
 * finishes meanwhile would otherwise stay open until its idle timeout, so idle connections are
 * closed as they appear. Past the timeout every connection left is cut, those still in their
 * TLS handshake included, so exit never waits on a client.
 */
export async function drain(open: readonly Listener[], state: DrainState, times: DrainTimes, logger: Logger): Promise<void> {
  state.draining = true;
  closeInFlight(open);
  if (times.delayMs > 0) {
    logger.info({ drain_delay_ms: times.delayMs }, 'draining: /readyz reports not ready, answers say Connection: close; still accepting for drain_delay');
    await new Promise((resolve) => setTimeout(resolve, times.delayMs));
  }
  logger.info({ shutdown_timeout_ms: times.timeoutMs }, 'no longer accepting connections; waiting for requests in flight');
  const sweep = setInterval(() => {
    for (const l of open) l.server.closeIdleConnections();
  }, 50);
  const deadline = setTimeout(() => {
    logger.warn({ shutdown_timeout_ms: times.timeoutMs }, 'requests still in flight at shutdown_timeout; closing their connections');
    for (const l of open) {
      l.server.closeAllConnections();
      for (const socket of l.sockets) socket.destroy();
    }
  }, times.timeoutMs);
  try {
    await Promise.all(open.map((l) => l.close()));
  } finally {
    clearInterval(sweep);
    clearTimeout(deadline);
  }
}
