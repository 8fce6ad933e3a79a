// Wires a policy to listeners: load and check everything first, then open ports. Nothing listens
// until the policy and every certificate it names have been accepted. The parts live in
// runtime/: listeners (bind, drain, close), the reloader, readiness.
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadPolicy } from './policy/load.js';
import { loadPolicyOffThread } from './policy/load-off-thread.js';
import { reportModeSummary } from './policy/report-mode.js';
import { PolicyError, type Diagnostic, type PolicyConfig } from './types/policy.js';
import { loadCertificates, type LoadedCertificate } from './tls/load.js';
import { buildSnapshot, type Snapshot, type SnapshotDeps } from './snapshot.js';
import { createStore } from './store/create.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import type { Store } from './store/store.js';
import { timedStore } from './store/timed-store.js';
import { UpstreamPools } from './proxy/forwarder.js';
import { upstreamEvents } from './proxy/upstream-events.js';
import { createLogger, redactingLogger, type Logger } from './observability/logger.js';
import { compileLogRedactor } from './masking/redact.js';
import { Decisions } from './observability/decisions.js';
import { Metrics } from './observability/metrics.js';
import { Alerts } from './observability/alerts/engine.js';
import { Tracing } from './observability/tracing.js';
import { droppedLines } from './observability/log-destination.js';
import { Egress } from './egress/egress.js';
import { egressCaller } from './egress/caller.js';
import { ListenError, bindAdmin, bindEgress, bindTraffic, drain, type DrainState, type Listener } from './runtime/listeners.js';
import { readiness, unreadableFiles } from './runtime/readiness.js';
import type { Readiness } from './observability/admin-server.js';
import { startReloader, type ReloadResult, type Reloader } from './runtime/reloader.js';
import { PolicyRecords } from './runtime/policy-records.js';
import { startPayEgress, type PayEgress } from './pay-egress/server.js';
import { createDeliveries } from './delivery/deliveries.js';
import { MemoryDeliveryQueue } from './store/memory-delivery-queue.js';

export type { ReloadResult } from './runtime/reloader.js';

/** How long a start waits for Redis before serving without it. */
const REDIS_START_WAIT_MS = 2000;

/** Log lines written before the first snapshot exists (policy warnings, the store) still lose credentials. */
const BEFORE_POLICY = compileLogRedactor([]);

export interface LoadedPolicy {
  config: PolicyConfig;
  certificates: LoadedCertificate[];
  /** Warnings from the policy and its certificates; errors are thrown as PolicyError. */
  warnings: Diagnostic[];
}

/** Diagnostics in the order of the file, as an editor shows them. */
function bySource(diagnostics: Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Reads and validates a policy with its certificates. Throws PolicyError. */
export async function loadChecked(file: string, env: Record<string, string | undefined> = process.env, load = loadPolicy): Promise<LoadedPolicy> {
  let config: PolicyConfig;
  let warnings: Diagnostic[];
  try {
    ({ config, warnings } = await load(file, { env }));
  } catch (err) {
    // Certificate errors in the same pass as the policy's, when the TLS section itself is sound.
    if (!(err instanceof PolicyError) || !err.tls) throw err;
    throw new PolicyError(bySource([...err.diagnostics, ...loadCertificates(err.tls).diagnostics]));
  }
  const { certificates, diagnostics } = loadCertificates(config.tls);
  const all = bySource([...warnings, ...diagnostics]);
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
    const deliveries = { queue: new MemoryDeliveryQueue(1), count: () => undefined };
    const snapshot = await compile(loaded, { store, pools, logger: pino({ level: 'silent' }), deliveries });
    await snapshot.dispose();
  } finally {
    await Promise.all([store.close(), pools.close()]);
  }
}

/** Compiles a checked policy; what still fails here (a key a library refuses) is a policy error. */
async function compile(loaded: LoadedPolicy, deps: SnapshotDeps, before?: Snapshot): Promise<Snapshot> {
  try {
    return await buildSnapshot(loaded.config, loaded.certificates, deps, before);
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new PolicyError([{ severity: 'error', file: loaded.config.file, line: 1, col: 1, path: '', message: `the policy cannot be put in force: ${message}` }]);
  }
}

/** What the policy in force read from ${file:...} secrets: a reload keeps a value whose file cannot be read now. */
export function previousFiles(policy: PolicyConfig): { previous?: NonNullable<PolicyConfig['file_references']> } {
  return policy.file_references ? { previous: policy.file_references } : {};
}

export interface GatewayHandle {
  readonly snapshot: Snapshot;
  /** Undefined with `server.https: off`: then `http` serves the traffic a load balancer forwards. */
  readonly https: AddressInfo | undefined;
  readonly http: AddressInfo | undefined;
  readonly admin: AddressInfo | undefined;
  /** The `wechatpay.egress` listener, when the policy has one. */
  readonly payEgress: AddressInfo | undefined;
  /** The WeChat API egress listener (server.egress); undefined without one. */
  readonly egress: AddressInfo | undefined;
  /** How often this gateway refused or redirected a request, by reason. */
  readonly decisions: Decisions;
  /** The store the snapshots share, itself: theirs is wrapped to time every operation. */
  readonly store: Store;
  /** This gateway's Prometheus registry, served on the admin listener's /metrics. */
  readonly metrics: Metrics;
  /** The gateway's logger: each line is redacted by the policy in force when it is written. */
  readonly logger: Logger;
  /** What /readyz reports (a cluster's primary asks each worker). */
  readonly readiness: Readiness;
  /** Tells the alert rules how a reload ended; a cluster's primary calls it on one worker. */
  reportReload(result: ReloadResult): void;
  /** Loads the policy file again and puts it in force unless it fails; SIGHUP and file changes call it. `changedAt` (performance.now()): when the change was first seen. */
  reload(changedAt?: number): Promise<ReloadResult>;
  /**
   * The signal path: /readyz turns 503 and answers say `Connection: close` at once, the listeners
   * keep accepting for server.drain_delay (read now, so a reload changes it), then requests in
   * flight get server.shutdown_timeout.
   */
  shutdown(): Promise<void>;
  /** Stops at once, without the drain delay (embedding, tests); otherwise as shutdown(). */
  close(): Promise<void>;
}

export async function startGateway(opts: {
  config: string;
  env?: Record<string, string | undefined>;
  logger?: Logger;
  /** The clock secrets' rotation windows and identity tokens' lives are measured with (epoch milliseconds); Date.now by default. */
  now?: () => number;
  /** The policy already read and checked (by the CLI, or a cluster's primary); read from `config` otherwise. */
  loaded?: LoadedPolicy;
  /** The state store to use instead of one made from the policy (a cluster worker's link to the primary's). */
  store?: Store;
  /**
   * A cluster worker: the primary watches the files, reads each reload's policy and sends it
   * (`candidate`); this process builds its snapshot and swaps only once `confirm` says that
   * every worker built theirs (runtime/reloader.ts).
   */
  coordinated?: { candidate(): Promise<LoadedPolicy>; confirm(): Promise<boolean> };
}): Promise<GatewayHandle> {
  const loaded = opts.loaded ?? (await loadChecked(opts.config, opts.env));
  // The one reference a reload swaps; every log line is redacted by the snapshot in force.
  let source: { current: Snapshot } | undefined;
  const logger = redactingLogger(opts.logger ?? createLogger(), () => source?.current.redactor ?? BEFORE_POLICY);
  for (const w of loaded.warnings) logger.warn({ file: w.file, line: w.line, col: w.col, key: w.path }, w.message);
  // Outlive every snapshot: counters and connections survive reloads.
  const store = opts.store ?? createStore(loaded.config.store, logger);
  // No traffic on a connection still being made: wait a moment for Redis, then start anyway
  // (it reconnects by itself; meanwhile requests that need it get store_unavailable).
  if (store instanceof RedisStore && !(await store.connect(REDIS_START_WAIT_MS))) {
    logger.warn({ waited_ms: REDIS_START_WAIT_MS }, 'redis store not reachable at start; requests that need it get 503 store_unavailable until it is');
  }
  const pools = new UpstreamPools();
  const open: Listener[] = [];
  let ready: (() => boolean) | undefined;
  const metrics = new Metrics(
    () => source?.current.certificates ?? [],
    () => store,
    droppedLines(logger),
    () => (source ? unreadableFiles(source.current.policy).map((u) => u.key) : []),
    { connections: () => open, ready: () => ready?.() ?? false },
  );
  // `metrics` exists before any request can use a previous value.
  const rotation = { now: opts.now ?? Date.now, usedPrevious: (key: string) => metrics.secretPreviousUsed.inc({ secret: key }) };
  // Outlives snapshots like the store: a reload keeps what is queued (delivery/deliveries.ts).
  const deliveries = createDeliveries({ store: loaded.config.store, source: { get current() { return source!.current; } }, caller: pools, logger, registry: metrics.registry });
  // Snapshots reach the store through its timer only: every operation shows in the latency histogram.
  const timed = timedStore(store, metrics.storeTimer(store.kind));
  // Outlives snapshots like the store: one token cache, pools and circuits across reloads.
  const inForce = { get current(): Snapshot { return source!.current; } };
  const egress = new Egress({ source: inForce, store: timed, logger, registry: metrics.registry, ...(opts.now && { now: opts.now }) });
  const deps: SnapshotDeps = { store: timed, pools, logger, rotation, wechat: egressCaller(egress, inForce), deliveries: deliveries.intake };
  let first: Snapshot;
  try {
    first = await compile(loaded, deps);
  } catch (err) {
    await Promise.all([store.close(), pools.close(), egress.close(), deliveries.stop(0)]);
    throw err;
  }
  const live = { current: first };
  source = live;
  const policies = new PolicyRecords(metrics);
  policies.inForce(first);
  deliveries.follow(first);
  // Outlives snapshots too: a reload with a changed `tracing` section replaces its exporter.
  const tracing = new Tracing(logger);
  await tracing.prepare(first.policy.tracing);

  let reloader: Reloader | undefined;
  const draining: DrainState = { draining: false };
  let stopping: Promise<void> | undefined;
  let payEgress: PayEgress | undefined;
  const stopAll = (withDelay: boolean): Promise<void> => {
    reloader?.close();
    const { drain_delay, shutdown_timeout } = live.current.policy.server;
    // Queued deliveries stop beside the listeners: attempts in flight get the same time requests do.
    // The Pay egress closes after the traffic listeners: requests they drain may still pay.
    stopping ??= Promise.all([drain(open, draining, { delayMs: withDelay ? drain_delay : 0, timeoutMs: shutdown_timeout }, logger), deliveries.stop(shutdown_timeout)]).then(() => undefined).finally(() =>
      Promise.all([live.current.dispose(), store.close(), pools.close(), egress.close(), alerts.close(), tracing.close(), payEgress?.close()]),
    );
    return stopping;
  };

  const decisions = new Decisions(metrics.decisions);
  pools.observe(upstreamEvents(metrics.registry, logger, () => pools.states()));
  const alerts = new Alerts({ signals: { storeUp: () => store.connected, certificates: () => live.current.certificates }, logger, counters: metrics.alerts }, first.policy.alerts);
  decisions.listener = (d) => alerts.refused(d);
  try {
    const { server } = first.policy;
    const { https, http } = await bindTraffic(open, { source: live, drain: draining, logger, decisions, metrics, pools, tracing });
    const checks = readiness(live, open, Date.now, { drain: draining });
    ready = () => checks.failing().length === 0;
    // A cluster worker leaves the admin listener to its primary, which answers for all workers.
    const admin = server.admin && !opts.coordinated ? await bindAdmin(open, server.admin.listen, server.admin.pos, checks, metrics.registry, draining, () => policies.current(live.current)) : undefined;
    // Its listen address is read at start; keys, api_base and the merchant key follow reloads.
    const pay = first.policy.wechatpay?.egress;
    if (pay) {
      payEgress = await startPayEgress({ section: () => live.current.policy.wechatpay, logger, registry: metrics.registry, now: rotation.now }).catch((err: unknown) => {
        throw new ListenError(pay.listen, pay.pos, err);
      });
    }
    const egressAt = server.egress ? await bindEgress(open, server.egress.listen, server.egress.pos, egress, live, draining, opts.now) : undefined;
    const running = startReloader({
      file: opts.config,
      source: live,
      logger,
      metrics,
      // Off the event loop: validating a large policy takes seconds that requests would wait.
      // What the policy in force read from files stands in for a secret file that cannot be read now.
      load: opts.coordinated?.candidate ?? (() => loadChecked(opts.config, opts.env, (file, o) => loadPolicyOffThread(file, { ...o, logger, ...previousFiles(live.current.policy) }))),
      ...(opts.coordinated && { coordinated: { confirm: opts.coordinated.confirm } }),
      compile: (next) => compile(next, deps, live.current),
      onSwap: (previous, next) => {
        deliveries.follow(next);
        return policies.swapped(previous, next);
      },
      onResult: (result) => {
        if (result.ok) alerts.configure(live.current.policy.alerts);
        // A cluster's primary tells one worker each reload's outcome (reportReload): one alert, not one per worker.
        if (!opts.coordinated) alerts.reloaded(result);
      },
    });
    reloader = running;
    logger.info(
      { https: https ? `${https.address}:${https.port}` : 'off (TLS terminated by a trusted proxy)', http: http && `${http.address}:${http.port}`, admin: admin && `${admin.address}:${admin.port}`, egress: egressAt && `${egressAt.address}:${egressAt.port}`, pay_egress: payEgress && `${payEgress.address.address}:${payEgress.address.port}`, routes: first.policy.routes.length, report_mode: reportModeSummary(first.policy) },
      // A cluster's primary says `wxgw listening` once every worker does.
      opts.coordinated ? 'worker listening' : 'wxgw listening',
    );
    return {
      get snapshot() {
        return live.current;
      },
      https,
      http,
      admin,
      payEgress: payEgress?.address,
      egress: egressAt,
      decisions,
      store,
      metrics,
      logger,
      readiness: checks,
      reportReload: (result: ReloadResult) => alerts.reloaded(result),
      reload: (changedAt?: number): Promise<ReloadResult> => running.reload(changedAt),
      shutdown: () => stopAll(true),
      close: () => stopAll(false),
    };
  } catch (err) {
    await stopAll(false);
    throw err;
  }
}
