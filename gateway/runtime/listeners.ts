// The gateway's listeners: bound in the order the policy names them, each failure named by the
// policy line that asked for the address, and closed together at shutdown without cutting the
// requests in flight short.
//
//   bindTraffic(open, deps)                     the HTTPS listener and the plain-HTTP one
//   bindAdmin(open, at, pos, readiness, registry)
//   drain(open, timeoutMs, logger)              stop accepting, wait, then cut what is left
// Each bound listener is pushed on `open` as soon as it listens, so a later failure can close it.
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ListenAddress, SourcePos } from '../types/policy.js';
import type { Snapshot } from '../snapshot.js';
import { liveTlsServerOptions, type HandshakeTls } from '../tls/server-options.js';
import type { UpstreamPools } from '../proxy/forwarder.js';
import { createGatewayServer, type SnapshotSource } from '../proxy/gateway-server.js';
import { createRedirectServer } from '../proxy/redirect-server.js';
import { createAdminServer, type Readiness } from '../observability/admin-server.js';
import type { Decisions } from '../observability/decisions.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

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
  readonly name: 'https' | 'http' | 'admin';
  readonly server: Server;
  close(): Promise<void>;
}

export interface TrafficDeps {
  readonly source: SnapshotSource;
  readonly logger: Logger;
  readonly decisions: Decisions;
  readonly metrics: Metrics;
  readonly pools: UpstreamPools;
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
  const { source, logger, decisions } = deps;
  const { server } = source.current.policy;
  let https: AddressInfo | undefined;
  let http: AddressInfo | undefined;
  if (server.https) {
    const { listen: at, pos } = server.https;
    const app = createGatewayServer({ ...deps, tls: liveTlsServerOptions(() => handshake(source.current)) });
    followDefaultContext(app.server as unknown as HttpsServer, source);
    // Fastify names the scheme by its own `https` option, which the server factory bypasses.
    const listenTextResolver = (address: string): string => `gateway listener bound at ${address.replace(/^http:/, 'https:')}`;
    await app.listen({ host: at.host, port: at.port, listenTextResolver }).catch((err: unknown) => {
      throw new ListenError(at, pos, err);
    });
    open.push({ name: 'https', server: app.server, close: () => app.close() });
    https = app.server.address() as AddressInfo;
  }
  // With https off the policy guarantees a redirect listener, which then serves the gateway
  // itself for requests a trusted load balancer received over https.
  if (server.http && server.http.mode === 'redirect') {
    const { listen: at, pos } = server.http;
    if (server.https) {
      const plain = createRedirectServer(source, logger, decisions);
      http = await listen(plain, at, pos);
      open.push({ name: 'http', server: plain, close: () => closeServer(plain) });
    } else {
      const app = createGatewayServer({ ...deps, tls: null });
      await app.listen({ host: at.host, port: at.port }).catch((err: unknown) => {
        throw new ListenError(at, pos, err);
      });
      open.push({ name: 'http', server: app.server, close: () => app.close() });
      http = app.server.address() as AddressInfo;
    }
  }
  return { https, http };
}

export async function bindAdmin(open: Listener[], at: ListenAddress, pos: SourcePos, readiness: Readiness, registry: Registry): Promise<AddressInfo> {
  const admin = createAdminServer(readiness, registry);
  const address = await listen(admin, at, pos);
  open.push({ name: 'admin', server: admin, close: () => closeServer(admin) });
  return address;
}

/**
 * Stops every listener at once, then waits for requests in flight. A keep-alive connection whose
 * request finishes after close() began would otherwise stay open until its idle timeout, so idle
 * connections are closed as they appear; past the timeout the rest are cut.
 */
export async function drain(open: readonly Listener[], timeoutMs: number, logger: Logger): Promise<void> {
  const sweep = setInterval(() => {
    for (const l of open) l.server.closeIdleConnections();
  }, 50);
  const deadline = setTimeout(() => {
    logger.warn({ shutdown_timeout_ms: timeoutMs }, 'requests still in flight at shutdown_timeout; closing their connections');
    for (const l of open) l.server.closeAllConnections();
  }, timeoutMs);
  try {
    await Promise.all(open.map((l) => l.close()));
  } finally {
    clearInterval(sweep);
    clearTimeout(deadline);
  }
}
