// Wires a policy to listeners: load and check everything first, then open ports. Nothing listens
// until the policy and every certificate it names have been accepted.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadPolicy } from './policy/load.js';
import { PolicyError, type Diagnostic, type ListenAddress, type SourcePos } from './policy/types.js';
import { loadCertificates } from './tls/load.js';
import { buildTlsServerOptions } from './tls/server-options.js';
import { buildSnapshot, type Snapshot } from './snapshot.js';
import { createGatewayServer } from './proxy/gateway-server.js';
import { createRedirectServer } from './proxy/redirect-server.js';
import { createAdminServer } from './observability/admin-server.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Decisions } from './observability/decisions.js';

export interface LoadedPolicy {
  snapshot: Snapshot;
  /** Warnings from the policy and its certificates; errors are thrown as PolicyError. */
  warnings: Diagnostic[];
}

/** Reads, validates and compiles a policy with its certificates. Throws PolicyError. */
export async function loadSnapshot(file: string, env: Record<string, string | undefined> = process.env): Promise<LoadedPolicy> {
  const { config, warnings } = await loadPolicy(file, { env });
  const { certificates, diagnostics } = loadCertificates(config.tls);
  const all = [...warnings, ...diagnostics];
  if (diagnostics.some((d) => d.severity === 'error')) throw new PolicyError(all);
  return { snapshot: buildSnapshot(config, certificates), warnings: all };
}

export interface GatewayHandle {
  readonly snapshot: Snapshot;
  /** Undefined with `server.https: off`: then `http` serves the traffic a load balancer forwards. */
  readonly https: AddressInfo | undefined;
  readonly http: AddressInfo | undefined;
  readonly admin: AddressInfo | undefined;
  /** How often this gateway refused or redirected a request, by reason. */
  readonly decisions: Decisions;
  close(): Promise<void>;
}

/** A listen failure names the address and the policy line that asked for it. */
function listenError(err: unknown, at: ListenAddress, pos: SourcePos): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'EADDRINUSE' ? 'the address is already in use' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : code === 'EADDRNOTAVAIL' ? 'no interface of this machine has that address' : String(err);
  return new Error(`cannot listen on ${at.host}:${at.port} (${pos.path} at ${pos.file}:${pos.line}:${pos.col}): ${why}`, { cause: err });
}

function listen(server: Server, at: ListenAddress, pos: SourcePos): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown): void => reject(listenError(err, at, pos));
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

export async function startGateway(opts: {
  config: string;
  env?: Record<string, string | undefined>;
  logger?: Logger;
}): Promise<GatewayHandle> {
  const logger = opts.logger ?? createLogger();
  const { snapshot, warnings } = await loadSnapshot(opts.config, opts.env);
  for (const w of warnings) logger.warn({ file: w.file, line: w.line, col: w.col, key: w.path }, w.message);

  const source = { current: snapshot };
  const { server } = snapshot.policy;
  const started: { close(): Promise<void> }[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of started.reverse()) await s.close();
  };

  const decisions = new Decisions();
  try {
    let https: AddressInfo | undefined;
    let http: AddressInfo | undefined;
    if (server.https) {
      const { listen: at, pos } = server.https;
      const app = createGatewayServer({ source, logger, decisions, tls: buildTlsServerOptions(snapshot.policy.tls, snapshot.certificates) });
      await app.listen({ host: at.host, port: at.port }).catch((err: unknown) => {
        throw listenError(err, at, pos);
      });
      started.push({ close: () => app.close() });
      https = app.server.address() as AddressInfo;
    }
    // With https off the policy guarantees a redirect listener, which then serves the gateway
    // itself for requests a trusted load balancer received over https.
    if (server.http && server.http.mode === 'redirect') {
      const { listen: at, pos } = server.http;
      if (server.https) {
        const plain = createRedirectServer(source, logger, decisions);
        http = await listen(plain, at, pos);
        started.push({ close: () => closeServer(plain) });
      } else {
        const app = createGatewayServer({ source, logger, decisions, tls: null });
        await app.listen({ host: at.host, port: at.port }).catch((err: unknown) => {
          throw listenError(err, at, pos);
        });
        started.push({ close: () => app.close() });
        http = app.server.address() as AddressInfo;
      }
    }

    let admin: AddressInfo | undefined;
    if (server.admin) {
      const adminServer = createAdminServer({
        failing() {
          const now = Date.now();
          return source.current.certificates
            .filter((c) => c.notAfter.getTime() <= now)
            .map((c) => `certificate expired: ${c.certFile}`);
        },
      });
      admin = await listen(adminServer, server.admin.listen, server.admin.pos);
      started.push({ close: () => closeServer(adminServer) });
    }

    logger.info(
      { https: https ? `${https.address}:${https.port}` : 'off (TLS terminated by a trusted proxy)', http: http && `${http.address}:${http.port}`, admin: admin && `${admin.address}:${admin.port}`, routes: snapshot.policy.routes.length },
      'wxgw listening',
    );
    return {
      get snapshot() {
        return source.current;
      },
      https,
      http,
      admin,
      decisions,
      close: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
