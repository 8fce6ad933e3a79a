// Wires a policy to listeners: load and check everything first, then open ports. Nothing listens
// until the policy and every certificate it names have been accepted.
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { loadPolicy } from './policy/load.js';
import { PolicyError, formatDiagnostic, type Diagnostic, type ListenAddress, type SourcePos } from './policy/types.js';
import { loadCertificates } from './tls/load.js';
import { buildTlsServerOptions, defaultContextOptions } from './tls/server-options.js';
import { SniSelector } from './tls/sni.js';
import { listenerChange, policyFiles, watchFiles, type FileWatch } from './reload.js';
import { buildSnapshot, type Snapshot, type SnapshotDeps } from './snapshot.js';
import type { PolicyConfig } from './policy/types.js';
import type { LoadedCertificate } from './tls/load.js';
import { createStore } from './store/create.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';

/** How long a start waits for Redis before serving without it. */
const REDIS_START_WAIT_MS = 2000;
import { pino } from 'pino';
import { UpstreamPools } from './proxy/forwarder.js';
import { createGatewayServer } from './proxy/gateway-server.js';
import { createRedirectServer } from './proxy/redirect-server.js';
import { createAdminServer } from './observability/admin-server.js';
import { createLogger, withRedaction, type Logger } from './observability/logger.js';
import { compileMaskProfile, type CompiledMask } from './masking/compile.js';
import { logRedactPaths, redactText } from './masking/redact.js';
import { Decisions } from './observability/decisions.js';
import { Metrics } from './observability/metrics.js';

export interface LoadedPolicy {
  config: PolicyConfig;
  certificates: LoadedCertificate[];
  /** Warnings from the policy and its certificates; errors are thrown as PolicyError. */
  warnings: Diagnostic[];
}

/** Reads and validates a policy with its certificates. Throws PolicyError. */
export async function loadChecked(file: string, env: Record<string, string | undefined> = process.env): Promise<LoadedPolicy> {
  const { config, warnings } = await loadPolicy(file, { env });
  const { certificates, diagnostics } = loadCertificates(config.tls);
  const all = [...warnings, ...diagnostics];
  if (diagnostics.some((d) => d.severity === 'error')) throw new PolicyError(all);
  return { config, certificates, warnings: all };
}

/**
 * Compiles a checked policy without starting anything, as `wxgw validate` must: some problems
 * (a key a crypto library refuses) only show when the guards are built. Throws PolicyError.
 */
export async function compileCheck(loaded: LoadedPolicy): Promise<void> {
  const store = new MemoryStore();
  const pools = new UpstreamPools();
  try {
    const snapshot = await compile(loaded, { store, pools, logger: pino({ level: 'silent' }) });
    await snapshot.dispose();
  } finally {
    await Promise.all([store.close(), pools.close()]);
  }
}

/** Compiles a checked policy; what still fails here (a key a library refuses) is a policy error. */
async function compile(loaded: LoadedPolicy, deps: SnapshotDeps): Promise<Snapshot> {
  try {
    return await buildSnapshot(loaded.config, loaded.certificates, deps);
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new PolicyError([{ severity: 'error', file: loaded.config.file, line: 1, col: 1, path: '', message: `the policy cannot be put in force: ${message}` }]);
  }
}

export type ReloadResult =
  | { ok: true; ms: number; warnings: Diagnostic[] }
  /** `invalid`: the policy or a certificate has errors; `restart`: it changes a listener. */
  | { ok: false; why: 'invalid' | 'restart'; message: string; diagnostics: Diagnostic[] };

export interface GatewayHandle {
  readonly snapshot: Snapshot;
  /** Undefined with `server.https: off`: then `http` serves the traffic a load balancer forwards. */
  readonly https: AddressInfo | undefined;
  readonly http: AddressInfo | undefined;
  readonly admin: AddressInfo | undefined;
  /** How often this gateway refused or redirected a request, by reason. */
  readonly decisions: Decisions;
  /** This gateway's Prometheus registry, served on the admin listener's /metrics. */
  readonly metrics: Metrics;
  /** Loads the policy file again and puts it in force unless it fails; SIGHUP and file changes call it. */
  reload(): Promise<ReloadResult>;
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

/** The HTTPS listener's certificate selection, which a reload replaces for new handshakes. */
interface LiveTls {
  sni: SniSelector;
  server: HttpsServer;
}

interface Started {
  name: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Stops every listener at once, then waits for requests in flight. A keep-alive connection whose
 * request finishes after close() began would otherwise stay open until its idle timeout, so idle
 * connections are closed as they appear; past the timeout the rest are cut.
 */
async function drain(started: readonly Started[], timeoutMs: number, logger: Logger): Promise<void> {
  const sweep = setInterval(() => {
    for (const s of started) s.server.closeIdleConnections();
  }, 50);
  const deadline = setTimeout(() => {
    logger.warn({ shutdown_timeout_ms: timeoutMs }, 'requests still in flight at shutdown_timeout; closing their connections');
    for (const s of started) s.server.closeAllConnections();
  }, timeoutMs);
  try {
    await Promise.all(started.map((s) => s.close()));
  } finally {
    clearInterval(sweep);
    clearTimeout(deadline);
  }
}

export async function startGateway(opts: {
  config: string;
  env?: Record<string, string | undefined>;
  logger?: Logger;
}): Promise<GatewayHandle> {
  const loaded = await loadChecked(opts.config, opts.env);
  // Error text is scrubbed with the profiles in force (after a reload, the new ones); the
  // redacted field paths are the starting policy's, as pino fixes them when a logger is made.
  const masked = [...loaded.config.mask_profiles.values()].map(compileMaskProfile);
  let masks = (): readonly CompiledMask[] => masked;
  const logger = withRedaction(opts.logger ?? createLogger(), logRedactPaths(masked), (text) => redactText(masks(), text));
  for (const w of loaded.warnings) logger.warn({ file: w.file, line: w.line, col: w.col, key: w.path }, w.message);
  // Outlive every snapshot: counters and connections survive reloads.
  const store = createStore(loaded.config.store, logger);
  // No traffic on a connection still being made: wait a moment for Redis, then start anyway
  // (it reconnects by itself; meanwhile requests that need it get store_unavailable).
  if (store instanceof RedisStore && !(await store.connect(REDIS_START_WAIT_MS))) {
    logger.warn({ waited_ms: REDIS_START_WAIT_MS }, 'redis store not reachable at start; requests that need it get 503 store_unavailable until it is');
  }
  const pools = new UpstreamPools();
  const deps: SnapshotDeps = { store, pools, logger };
  let snapshot: Snapshot;
  try {
    snapshot = await compile(loaded, deps);
  } catch (err) {
    await Promise.all([store.close(), pools.close()]);
    throw err;
  }

  const source = { current: snapshot };
  masks = () => source.current.masks;
  const { server } = snapshot.policy;
  const started: Started[] = [];
  let watcher: FileWatch | undefined;
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => {
    watcher?.close();
    stopping ??= drain(started, source.current.policy.server.shutdown_timeout, logger).finally(() =>
      Promise.all([source.current.dispose(), store.close(), pools.close()]),
    );
    return stopping;
  };

  const metrics = new Metrics(() => source.current.certificates, () => store);
  const decisions = new Decisions(metrics.decisions);
  // What a reload swaps besides the snapshot: the certificates new handshakes get.
  let tls: LiveTls | undefined;
  try {
    let https: AddressInfo | undefined;
    let http: AddressInfo | undefined;
    if (server.https) {
      const { listen: at, pos } = server.https;
      const sni = new SniSelector(snapshot.certificates);
      const app = createGatewayServer({ source, logger, decisions, metrics, pools, tls: buildTlsServerOptions(snapshot.policy.tls, snapshot.certificates, sni) });
      // Fastify names the scheme by its own `https` option, which the server factory bypasses.
      const listenTextResolver = (address: string): string => `gateway listener bound at ${address.replace(/^http:/, 'https:')}`;
      await app.listen({ host: at.host, port: at.port, listenTextResolver }).catch((err: unknown) => {
        throw listenError(err, at, pos);
      });
      started.push({ name: 'https', server: app.server, close: () => app.close() });
      https = app.server.address() as AddressInfo;
      tls = { sni, server: app.server as unknown as HttpsServer };
    }
    // With https off the policy guarantees a redirect listener, which then serves the gateway
    // itself for requests a trusted load balancer received over https.
    if (server.http && server.http.mode === 'redirect') {
      const { listen: at, pos } = server.http;
      if (server.https) {
        const plain = createRedirectServer(source, logger, decisions);
        http = await listen(plain, at, pos);
        started.push({ name: 'http', server: plain, close: () => closeServer(plain) });
      } else {
        const app = createGatewayServer({ source, logger, decisions, metrics, pools, tls: null });
        await app.listen({ host: at.host, port: at.port }).catch((err: unknown) => {
          throw listenError(err, at, pos);
        });
        started.push({ name: 'http', server: app.server, close: () => app.close() });
        http = app.server.address() as AddressInfo;
      }
    }

    let admin: AddressInfo | undefined;
    if (server.admin) {
      const adminServer = createAdminServer({
        failing() {
          const now = Date.now();
          const failing = source.current.certificates
            .filter((c) => c.notAfter.getTime() <= now)
            .map((c) => `certificate expired: ${c.certFile}`);
          for (const s of started) if (!s.server.listening) failing.push(`listener not up: ${s.name}`);
          return failing;
        },
      }, metrics.registry);
      admin = await listen(adminServer, server.admin.listen, server.admin.pos);
      started.push({ name: 'admin', server: adminServer, close: () => closeServer(adminServer) });
    }

    // Reloads run one at a time; changes arriving meanwhile are folded into one more reload.
    let running: Promise<ReloadResult> | undefined;
    let queued: Promise<ReloadResult> | undefined;
    const reloadOnce = async (changedAt: number | undefined): Promise<ReloadResult> => {
      const t0 = performance.now();
      const result = await applyReload({ file: opts.config, env: opts.env, source, tls, logger, deps });
      metrics.reloads.labels(result.ok ? 'success' : result.why === 'invalid' ? 'invalid' : 'restart_required').inc();
      const ms = Math.round((performance.now() - (changedAt ?? t0)) * 10) / 10;
      if (result.ok) {
        watcher?.update(policyFiles(source.current.policy));
        logger.info({ ms, since: changedAt === undefined ? 'request' : 'file change', routes: source.current.policy.routes.length }, 'policy reloaded');
        return { ...result, ms };
      }
      return result;
    };
    const reload = (changedAt?: number): Promise<ReloadResult> => {
      if (!running) {
        running = reloadOnce(changedAt).finally(() => (running = undefined));
        return running;
      }
      queued ??= running.then(() => {
        queued = undefined;
        return reload(changedAt);
      });
      return queued;
    };
    watcher = watchFiles(policyFiles(snapshot.policy), (at) => {
      reload(at).catch((err: unknown) => logger.error({ err }, 'policy reload failed'));
    });

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
      metrics,
      reload: () => reload(),
      close: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Builds the new snapshot beside the old one and swaps it in, or changes nothing. Requests in
 * flight keep the snapshot they started with; new handshakes get the new certificates.
 */
async function applyReload(ctx: {
  file: string;
  env: Record<string, string | undefined> | undefined;
  source: { current: Snapshot };
  tls: LiveTls | undefined;
  logger: Logger;
  deps: SnapshotDeps;
}): Promise<ReloadResult> {
  const { logger, source } = ctx;
  let loaded: LoadedPolicy;
  let next: Snapshot;
  try {
    loaded = await loadChecked(ctx.file, ctx.env);
    const change = listenerChange(source.current.policy, loaded.config);
    if (change) {
      logger.error(`policy reload refused: ${change}; the previous policy stays in force`);
      return { ok: false, why: 'restart', message: change, diagnostics: [] };
    }
    next = await compile(loaded, ctx.deps);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const d of err.diagnostics) logger[d.severity === 'error' ? 'error' : 'warn']({ file: d.file, line: d.line, col: d.col, key: d.path }, formatDiagnostic(d));
    const message = `${ctx.file}: the policy was rejected; the previous policy stays in force`;
    logger.error(message);
    return { ok: false, why: 'invalid', message, diagnostics: err.diagnostics };
  }
  for (const w of loaded.warnings) logger.warn({ file: w.file, line: w.line, col: w.col, key: w.path }, formatDiagnostic(w));
  if (ctx.tls) {
    ctx.tls.sni.replace(next.certificates);
    // The default context serves clients that send no SNI.
    ctx.tls.server.setSecureContext(defaultContextOptions(next.policy.tls, next.certificates));
  }
  const previous = source.current;
  source.current = next;
  previous.dispose().catch((err: unknown) => logger.warn({ err }, 'releasing the previous policy failed'));
  return { ok: true, ms: 0, warnings: loaded.warnings };
}
