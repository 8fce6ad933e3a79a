// Reloading the policy: watch the files it reads, run reloads one at a time, build the new
// snapshot beside the old one and swap the one reference everything reads, or change nothing.
// Requests in flight keep the snapshot they started with; new requests, handshakes and log lines
// read the new one.
//
//   startReloader(deps) -> { reload(changedAt?), close() }
//   listenerChange(old, next) -> message naming the first key that needs a restart
//   policyFiles(policy)       -> every file the policy reads
//
// Secrets read with ${file:...} are files like the certificates: a secret store rewriting one
// (a Kubernetes Secret's `..data` swap, a Vault Agent render) reloads the policy, and the log
// names each secret that changed by its key path, never its value.

import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { PolicyError, formatDiagnostic, type Diagnostic, type ListenAddress, type PolicyConfig } from '../types/policy.js';
import type { Snapshot } from '../snapshot.js';
import { reportModeSummary } from '../policy/report-mode.js';
import { changedSecrets } from '../rotation/in-force.js';
import { sameSecret } from '../rotation/versions.js';
import { watchFiles, type FileWatch } from './file-watch.js';

export type ReloadResult =
  | { ok: true; ms: number; warnings: Diagnostic[] }
  /** `invalid`: the policy or a certificate has errors; `restart`: it changes a listener. */
  | { ok: false; why: 'invalid' | 'restart'; message: string; diagnostics: Diagnostic[] };

const at = (l: ListenAddress | undefined): string => (l ? `${l.host}:${l.port}` : 'off');

/**
 * Listeners are bound once and their limits are baked into the servers, so a policy that
 * changes them is refused: applying half of it would leave the file lying about what runs.
 */
export function listenerChange(old: PolicyConfig, next: PolicyConfig): string | undefined {
  const a = old.server;
  const b = next.server;
  const restart = (key: string, from: string, to: string): string =>
    `${key} changed from ${from} to ${to}; restart wxgw to apply it`;
  if (at(a.https?.listen) !== at(b.https?.listen)) return restart('server.https.listen', at(a.https?.listen), at(b.https?.listen));
  if (at(a.http?.listen) !== at(b.http?.listen)) return restart('server.http.listen', at(a.http?.listen), at(b.http?.listen));
  if ((a.workers ?? 'auto') !== (b.workers ?? 'auto')) return restart('server.workers', String(a.workers ?? 'auto'), String(b.workers ?? 'auto'));
  if ((a.http?.mode ?? 'off') !== (b.http?.mode ?? 'off')) return restart('server.http.mode', a.http?.mode ?? 'off', b.http?.mode ?? 'off');
  if (at(a.admin?.listen) !== at(b.admin?.listen)) return restart('server.admin.listen', at(a.admin?.listen), at(b.admin?.listen));
  if (at(a.egress?.listen) !== at(b.egress?.listen)) return restart('server.egress.listen', at(a.egress?.listen), at(b.egress?.listen));
  // ALPN and the SETTINGS a connection starts with belong to the server; http2_resets is read
  // from the policy in force as each connection arrives, so it reloads.
  if (a.http2 !== b.http2 && a.https) return restart('server.http2', String(a.http2), String(b.http2));
  for (const key of ['body', 'handshake_timeout', 'headers_timeout', 'request_timeout', 'http2_streams'] as const) {
    if (a.limits[key] !== b.limits[key]) return restart(`server.limits.${key}`, String(a.limits[key]), String(b.limits[key]));
  }
  // The store holds live counters and connections; switching it mid-traffic would reset every
  // limit and replay window, so it changes only with a restart.
  const { pos: _a, ...storeA } = old.store;
  const { pos: _b, ...storeB } = next.store;
  if (JSON.stringify(storeA) !== JSON.stringify(storeB)) return 'store changed; restart wxgw to apply it';
  // The Pay egress listener is bound at start; its keys and api_base reload.
  const egressA = old.wechatpay?.egress?.listen;
  const egressB = next.wechatpay?.egress?.listen;
  if (at(egressA) !== at(egressB)) return restart('wechatpay.egress.listen', at(egressA), at(egressB));
  return undefined;
}

/** Every file a policy reads: the policy itself, certificates, keys, the CA bundle, verification keys, ${file:...} secrets, upstream TLS files. */
export function policyFiles(policy: PolicyConfig): string[] {
  const files = [policy.file];
  for (const r of policy.file_references?.values() ?? []) files.push(...r.files);
  for (const c of policy.tls.certificates) files.push(c.cert, c.key);
  if (policy.tls.roots !== 'system') files.push(policy.tls.roots.bundle);
  const jwtKey = policy.identity?.jwt?.key;
  if (jwtKey && jwtKey.kind !== 'secret') files.push(jwtKey.file);
  for (const k of policy.wechatpay?.keys ?? []) files.push(k.file);
  for (const u of policy.upstreams.values()) {
    for (const file of [u.tls?.ca, u.tls?.client_cert, u.tls?.client_key]) if (file) files.push(file);
  }
  return files;
}

/** A policy read from its files and checked, not yet compiled. */
export interface Candidate {
  readonly config: PolicyConfig;
  readonly warnings: Diagnostic[];
}

export interface ReloaderDeps<C extends Candidate> {
  /** The policy file as the operator named it, for messages. */
  readonly file: string;
  /** The one reference a reload swaps. */
  readonly source: { current: Snapshot };
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'reloads'>;
  /** Reads and checks the policy files again; throws PolicyError. */
  load(): Promise<C>;
  /** Builds a snapshot beside the one in force; throws PolicyError. */
  compile(candidate: C): Promise<Snapshot>;
  /** Called once the new snapshot is in force; what it returns (what changed) goes into the reload's log line. */
  onSwap?(previous: Snapshot, next: Snapshot): Record<string, unknown>;
  /** Quiet time after a file event before reloading (editors write in several steps). */
  readonly debounceMs?: number;
  /** Told of every reload's result, whatever started it (alerts on failed reloads). */
  onResult?(result: ReloadResult): void;
  /**
   * A cluster worker's reloads are decided by the primary, which watches the files and counts
   * them: the worker neither watches nor counts, and swaps only when `confirm` (asked with the
   * snapshot built) resolves true, i.e. every worker built its own; false disposes it.
   */
  readonly coordinated?: { confirm(): Promise<boolean> };
}

export interface Reloader {
  /** Reloads now (SIGHUP, the handle's reload()); `changedAt` is when a file change was first seen. */
  reload(changedAt?: number): Promise<ReloadResult>;
  /** Stops watching; a reload under way still finishes. */
  close(): void;
}

/** One line per secret whose value the reload changed: its key path and how long the old value still counts. */
function logSecretChanges(logger: Logger, before: Snapshot, after: Snapshot): void {
  const named = new Set<string>();
  for (const { key, previousUntil } of changedSecrets(before.secrets, after.secrets)) {
    named.add(key);
    if (previousUntil === undefined) logger.info({ secret: key }, `secret ${key} changed; the previous value is no longer accepted`);
    else {
      const until = new Date(previousUntil).toISOString();
      logger.info({ secret: key, previous_accepted_until: until }, `secret ${key} changed; the previous value is still accepted until ${until}`);
    }
  }
  const was = before.policy.file_references;
  for (const [key, ref] of after.policy.file_references ?? []) {
    const old = was?.get(key);
    if (!named.has(key) && old && !sameSecret(old.value, ref.value)) logger.info({ secret: key }, `${key} changed (read from ${ref.files.join(', ')})`);
  }
}

export function startReloader<C extends Candidate>(deps: ReloaderDeps<C>): Reloader {
  const { source, logger, metrics } = deps;
  let watcher: FileWatch | undefined;
  /** What the last swap's onSwap said, for its log line. */
  let swapped: Record<string, unknown> | undefined;

  /** Builds beside and swaps, or changes nothing. */
  const apply = async (): Promise<ReloadResult> => {
    let candidate: C;
    let next: Snapshot;
    try {
      candidate = await deps.load();
      const change = listenerChange(source.current.policy, candidate.config);
      if (change) {
        logger.error(`policy reload refused: ${change}; the previous policy stays in force`);
        return { ok: false, why: 'restart', message: change, diagnostics: [] };
      }
      next = await deps.compile(candidate);
      if (deps.coordinated && !(await deps.coordinated.confirm())) {
        await next.dispose();
        return { ok: false, why: 'invalid', message: 'another worker refused the policy; the previous policy stays in force', diagnostics: [] };
      }
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      for (const d of err.diagnostics) logger[d.severity === 'error' ? 'error' : 'warn']({ file: d.file, line: d.line, col: d.col, key: d.path }, formatDiagnostic(d));
      const message = `${deps.file}: the policy was rejected; the previous policy stays in force`;
      logger.error(message);
      return { ok: false, why: 'invalid', message, diagnostics: err.diagnostics };
    }
    for (const w of candidate.warnings) logger.warn({ file: w.file, line: w.line, col: w.col, key: w.path }, formatDiagnostic(w));
    const previous = source.current;
    source.current = next;
    swapped = deps.onSwap?.(previous, next);
    previous.dispose().catch((err: unknown) => logger.warn({ err }, 'releasing the previous policy failed'));
    logSecretChanges(logger, previous, next);
    return { ok: true, ms: 0, warnings: candidate.warnings };
  };

  const once = async (changedAt: number | undefined): Promise<ReloadResult> => {
    const t0 = performance.now();
    const result = await apply();
    if (!deps.coordinated) metrics.reloads.labels(result.ok ? 'success' : result.why === 'invalid' ? 'invalid' : 'restart_required').inc();
    deps.onResult?.(result);
    if (!result.ok) return result;
    const ms = Math.round((performance.now() - (changedAt ?? t0)) * 10) / 10;
    watcher?.update(policyFiles(source.current.policy));
    logger.info({ ms, since: changedAt === undefined ? 'request' : 'file change', routes: source.current.policy.routes.length, report_mode: reportModeSummary(source.current.policy), ...swapped }, 'policy reloaded');
    return { ...result, ms };
  };

  // One at a time; changes arriving meanwhile are folded into one more reload.
  let running: Promise<ReloadResult> | undefined;
  let queued: Promise<ReloadResult> | undefined;
  const reload = (changedAt?: number): Promise<ReloadResult> => {
    if (!running) {
      running = once(changedAt).finally(() => (running = undefined));
      return running;
    }
    queued ??= running.then(
      () => {
        queued = undefined;
        return reload(changedAt);
      },
      () => {
        queued = undefined;
        return reload(changedAt);
      },
    );
    return queued;
  };

  if (!deps.coordinated) {
    watcher = watchFiles(
      policyFiles(source.current.policy),
      (firstEventAt) => {
        reload(firstEventAt).catch((err: unknown) => logger.error({ err }, 'policy reload failed'));
      },
      deps.debounceMs,
    );
  }
  return {
    reload,
    close() {
      watcher?.close();
    },
  };
}
