// `wxgw start` with server.workers > 1 (node:cluster). The primary reads and checks the policy
// (errors exactly as a single process reports them, before any port opens), forks the workers
// and sends each the policy it checked; the workers serve the traffic listeners, whose sockets
// the primary holds and hands connections from in turn. The primary keeps:
//   - the policy in force: a reload is read and checked here, then every worker builds its
//     snapshot and says so; only when all did are they told to swap, otherwise none does
//     (two-phase: a worker never serves a policy another refused). A replacement worker gets
//     the policy in force, never a file changed since.
//   - the memory store, which the workers call over IPC (store/ipc-store.ts), so rate limits
//     and one-time claims are counted in one place.
//   - the admin listener: /readyz asks every worker, /metrics sums theirs (prom-client's
//     AggregatorRegistry) with the primary's own (reloads, worker restarts).
//   - the workers' lives: SIGTERM drains them all; one that dies is replaced, with a growing
//     delay while it keeps dying, and counted in wxgw_worker_restarts_total.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { compileCheck, loadChecked, previousFiles, type LoadedPolicy, type ReloadResult } from '../main.js';
import { loadPolicyOffThread } from '../policy/load-off-thread.js';
import { policyView } from '../policy/policy-view.js';
import { reportModeSummary } from '../policy/report-mode.js';
import { MemoryStore } from '../store/memory-store.js';
import { serveStore, type IpcPort } from '../store/ipc-store.js';
import { bindAdmin, drain, type DrainState, type Listener } from '../runtime/listeners.js';
import { listenerChange, policyFiles } from '../runtime/reloader.js';
import { watchFiles, type FileWatch } from '../runtime/file-watch.js';
import type { Logger } from '../observability/logger.js';
import { droppedLines } from '../observability/log-destination.js';
import { PolicyError, formatDiagnostic, type Diagnostic, type PolicyConfig } from '../types/policy.js';
import { carry, type CarriedPolicy } from './carry.js';
import { isMessage, type ToPrimary, type ToWorker } from './messages.js';

/**
 * `auto` runs one worker per core up to this many. Past it the primary, one process that hands
 * out every connection and answers every memory-store call, becomes the limit (docs/operations.md
 * has the per-call cost), and each worker adds its own memory; a bigger machine is better served
 * by more instances behind the balancer with the Redis store.
 */
export const AUTO_WORKERS_MAX = 8;

/** A worker that has not built a reload's snapshot by then refuses it. Large policies compile in seconds. */
const PREPARE_TIMEOUT_MS = 60_000;
/** How long /readyz and /metrics wait for a worker's answer. */
const ASK_TIMEOUT_MS = 2_000;
/** A replacement for a worker that keeps dying waits 100 ms, then twice as long each time, up to this. */
const RESPAWN_MAX_MS = 30_000;
/** Crashes further apart than this no longer count as a crash loop. */
const CRASH_MEMORY_MS = 60_000;

/** Gauges of one value per process that a sum would misstate: how their per-worker values combine. */
const AGGREGATE: Readonly<Record<string, 'min' | 'max'>> = {
  wxgw_policy_info: 'max',
  wxgw_last_reload_success_timestamp_seconds: 'min',
  wxgw_certificate_expiry_seconds: 'min',
  wxgw_store_up: 'min',
  wxgw_ready: 'min',
  wxgw_build_info: 'max',
  wxgw_secret_file_unreadable: 'max',
};

/** Absent means `auto`; on one core that is 1, and `wxgw start` runs the single process, no primary. */
export function workerCount(config: PolicyConfig, cores = availableParallelism()): number {
  const w = config.server.workers ?? 'auto';
  return w === 'auto' ? Math.max(1, Math.min(cores, AUTO_WORKERS_MAX)) : w;
}

/** A worker could not start (a listener that cannot bind); the CLI reports it like a single process's. */
export class WorkerStartError extends Error {
  override readonly name = 'WorkerStartError';
}

interface Slot {
  readonly n: number;
  worker: Worker | undefined;
  serving: boolean;
  /** Resolves with the current worker's exit code. */
  exited: Promise<number | null>;
  /** Resolves once the current worker's last log line has been relayed. */
  relayed: Promise<void>;
  /** When each recent crash happened, for the backoff. */
  crashes: number[];
}

export interface PrimaryHandle {
  readonly workers: number;
  readonly admin: AddressInfo | undefined;
  reload(changedAt?: number): Promise<ReloadResult>;
  /** Drains every worker (drain_delay, then in-flight requests); resolves true when all exited cleanly. */
  shutdown(): Promise<boolean>;
}

export async function startPrimary(opts: {
  file: string;
  loaded: LoadedPolicy;
  logger: Logger;
  /**
   * Where the workers' log lines go, one whole line per write: the primary's own destination.
   * Several processes writing batches to one stdout pipe could split each other's lines when
   * the pipe is full (only 4096 bytes are written atomically); relayed, they cannot.
   */
  lines?: { write(line: string): unknown };
  env?: Record<string, string | undefined>;
}): Promise<PrimaryHandle> {
  const { file, logger } = opts;
  const env = opts.env ?? process.env;
  // Problems only building the guards shows (a key a library refuses) are refused here, once,
  // rather than by every worker.
  await compileCheck(opts.loaded);
  let inForce: { loaded: LoadedPolicy; carried: CarriedPolicy; at: Date } = { loaded: opts.loaded, carried: carry(opts.loaded), at: new Date() };
  const count = workerCount(opts.loaded.config);
  cluster.setupPrimary({ serialization: 'advanced', silent: opts.lines !== undefined });

  const registry = new Registry();
  const restarts = new Counter({ name: 'wxgw_worker_restarts_total', help: 'Workers that exited unexpectedly and were replaced (server.workers > 1).', registers: [registry] });
  restarts.inc(0);
  const reloads = new Counter({
    name: 'wxgw_reloads_total',
    help: 'Policy reloads (the policy with its certificates), by result: success, invalid, restart_required.',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of ['success', 'invalid', 'restart_required']) reloads.inc({ result }, 0);
  // The workers' lines are written (or dropped when stdout is not read) by this process's
  // destination, so the drops are counted here, under the name a single process uses.
  const dropped = droppedLines(logger);
  let droppedSeen = 0;
  new Counter({
    name: 'wxgw_log_lines_dropped_total',
    help: 'Log lines dropped because the log destination (stdout) stopped accepting writes and its buffer (WXGW_LOG_BUFFER) was full.',
    registers: [registry],
    collect() {
      const now = dropped();
      this.inc(now - droppedSeen);
      droppedSeen = now;
    },
  });
  new Gauge({
    name: 'wxgw_workers',
    help: 'Worker processes serving traffic now, and (configured) how many server.workers asks for.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.labels('serving').set([...slots.values()].filter((s) => s.serving).length);
      this.labels('configured').set(count);
    },
  });

  const store = opts.loaded.config.store.kind === 'memory' ? new MemoryStore() : undefined;
  const slots = new Map<number, Slot>();
  /** Answers awaited from workers, by `kind:id`; a worker that exits answers undefined. */
  const waiting = new Map<Worker, Map<string, (m: ToPrimary | undefined) => void>>();
  let nextId = 1;
  let stopping = false;
  let reloading: Promise<unknown> | undefined;
  /** The exit codes of the workers running now. */
  const exits = (): Promise<(number | null)[]> => Promise.all([...slots.values()].map((s) => s.exited));

  const send = (worker: Worker, m: ToWorker): void => {
    if (worker.isConnected()) worker.send(m);
  };
  /** Waits for the worker's answer of `kind` to `id`; undefined when it exits or times out. */
  const answer = <K extends ToPrimary['wxgw']>(worker: Worker, kind: K, id: number, timeoutMs: number): Promise<Extract<ToPrimary, { wxgw: K }> | undefined> =>
    new Promise((resolve) => {
      const key = `${kind}:${id}`;
      const mine = waiting.get(worker);
      if (!mine) return resolve(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      timer.unref();
      const done = (m: ToPrimary | undefined): void => {
        clearTimeout(timer);
        mine.delete(key);
        resolve(m as Extract<ToPrimary, { wxgw: K }> | undefined);
      };
      mine.set(key, done);
    });
  const ask = async <K extends 'metrics' | 'readiness'>(worker: Worker, kind: K): Promise<Extract<ToPrimary, { wxgw: K }> | undefined> => {
    const id = nextId++;
    const reply = answer(worker, kind, id, ASK_TIMEOUT_MS);
    send(worker, { wxgw: kind, id });
    return reply;
  };

  let started: { resolve(): void; reject(err: Error): void; pending: number } | undefined;

  const spawn = (slot: Slot): void => {
    const worker = cluster.fork({ WXGW_WORKER: String(slot.n) });
    slot.worker = worker;
    if (opts.lines && worker.process.stdout && worker.process.stderr) {
      const lines = opts.lines;
      const relay = createInterface({ input: worker.process.stdout, crlfDelay: Infinity });
      relay.on('line', (line) => lines.write(`${line}\n`));
      slot.relayed = new Promise((resolve) => relay.once('close', resolve));
      worker.process.stderr.pipe(process.stderr, { end: false });
    }
    slot.serving = false;
    const mine = new Map<string, (m: ToPrimary | undefined) => void>();
    waiting.set(worker, mine);
    const detach = store ? serveStore(store, worker as unknown as IpcPort) : () => undefined;
    worker.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      const msg = m as ToPrimary;
      switch (msg.wxgw) {
        case 'hello':
          // A worker started while a reload is under way gets the policy that reload leaves in force.
          void Promise.resolve(reloading).finally(() => send(worker, { wxgw: 'start', file, policy: inForce.carried }));
          return;
        case 'listening':
          slot.serving = true;
          if (started) {
            if (--started.pending === 0) started.resolve();
          } else logger.info({ worker: slot.n, pid: worker.process.pid }, 'replacement worker serving');
          return;
        case 'failed':
          if (started) {
            started.reject(msg.diagnostics ? new PolicyError(msg.diagnostics) : new WorkerStartError(msg.message));
          } else logger.error({ worker: slot.n }, `replacement worker could not start: ${msg.message}`);
          return;
        default:
          mine.get(`${msg.wxgw}:${'id' in msg ? msg.id : ''}`)?.(msg);
      }
    });
    slot.exited = new Promise((resolve) =>
        worker.once('exit', (code, signal) => {
          detach();
          slot.serving = false;
          for (const done of [...mine.values()]) done(undefined);
          waiting.delete(worker);
          if (slot.worker === worker) slot.worker = undefined;
          resolve(code);
          if (started) return started.reject(new WorkerStartError(`worker ${slot.n} exited while starting (${signal ?? `code ${code}`})`));
          if (stopping) return;
          restarts.inc();
          const now = Date.now();
          slot.crashes = [...slot.crashes.filter((t) => now - t < CRASH_MEMORY_MS), now];
          const delay = Math.min(100 * 2 ** (slot.crashes.length - 1), RESPAWN_MAX_MS);
          logger.error({ worker: slot.n, pid: worker.process.pid, code, signal, restart_in_ms: delay }, 'worker exited unexpectedly; starting a replacement');
          setTimeout(() => {
            if (!stopping) spawn(slot);
          }, delay).unref();
        }),
    );
  };

  // Start: every worker listening, or none left running.
  try {
    await new Promise<void>((resolve, reject) => {
      started = { resolve, reject, pending: count };
      for (let n = 1; n <= count; n++) {
        const slot: Slot = { n, worker: undefined, serving: false, exited: Promise.resolve(null), relayed: Promise.resolve(), crashes: [] };
        slots.set(n, slot);
        spawn(slot);
      }
    });
  } catch (err) {
    stopping = true;
    for (const s of slots.values()) s.worker?.process.kill('SIGKILL');
    await exits();
    await store?.close();
    throw err;
  } finally {
    started = undefined;
  }

  const live = (): [Slot, Worker][] => [...slots.values()].flatMap((s) => (s.serving && s.worker ? [[s, s.worker] as [Slot, Worker]] : []));

  // ---- reload: read and check here, then prepare everywhere, then swap everywhere or nowhere ----
  let watcher: FileWatch | undefined;
  const logDiagnostics = (diagnostics: readonly Diagnostic[]): void => {
    for (const d of diagnostics) logger[d.severity === 'error' ? 'error' : 'warn']({ file: d.file, line: d.line, col: d.col, key: d.path }, formatDiagnostic(d));
  };
  const refuse = (why: 'invalid' | 'restart', message: string, diagnostics: Diagnostic[] = []): ReloadResult => {
    reloads.labels(why === 'invalid' ? 'invalid' : 'restart_required').inc();
    logger.error(message);
    return { ok: false, why, message, diagnostics };
  };

  const reloadOnce = async (changedAt: number | undefined): Promise<ReloadResult> => {
    const t0 = performance.now();
    let candidate: LoadedPolicy;
    try {
      candidate = await loadChecked(file, env, (f, o) => loadPolicyOffThread(f, { ...o, logger, ...previousFiles(inForce.loaded.config) }));
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      logDiagnostics(err.diagnostics);
      return refuse('invalid', `${file}: the policy was rejected; the previous policy stays in force`, err.diagnostics);
    }
    const change = listenerChange(inForce.loaded.config, candidate.config);
    if (change) return refuse('restart', `policy reload refused: ${change}; the previous policy stays in force`);
    let carried: CarriedPolicy;
    try {
      carried = carry(candidate);
    } catch (err) {
      return refuse('invalid', `policy reload refused: the policy cannot be handed to the workers (${String(err)}); the previous policy stays in force`);
    }
    logDiagnostics(candidate.warnings);

    const id = nextId++;
    const workers = live();
    const prepared = workers.map(([slot, worker]) => {
      const ready = answer(worker, 'prepared', id, PREPARE_TIMEOUT_MS).then((m) => {
        if (m) logger.debug({ worker: slot.n, reload: id }, 'worker built the new policy; waiting for the others');
        return m;
      });
      const refused = answer(worker, 'reloaded', id, PREPARE_TIMEOUT_MS + 5_000);
      return Promise.race([ready.then((m) => (m ? { slot } : { slot, why: `did not build the policy within ${PREPARE_TIMEOUT_MS / 1000}s or exited` })), refused.then((m) => ({ slot, why: m?.message ?? 'exited' }))]).then((r) => ({ ...r, refused }));
    });
    const since = changedAt === undefined ? {} : { changedMsAgo: performance.now() - changedAt };
    for (const [, worker] of workers) send(worker, { wxgw: 'prepare', id, policy: carried, ...since });
    const outcomes = await Promise.all(prepared);
    const refusal = outcomes.find((o): o is typeof o & { why: string } => 'why' in o && o.why !== undefined);
    if (refusal) {
      for (const [, worker] of workers) send(worker, { wxgw: 'decide', id, commit: false });
      await Promise.all(outcomes.map((o) => o.refused));
      return refuse('invalid', `policy reload refused by worker ${refusal.slot.n}: ${refusal.why}; every worker keeps the previous policy`);
    }
    // Every worker holds the new snapshot: from here on it is the policy in force, for
    // replacements too.
    inForce = { loaded: candidate, carried, at: new Date() };
    for (const [, worker] of workers) send(worker, { wxgw: 'decide', id, commit: true });
    await Promise.all(outcomes.map((o) => o.refused));
    reloads.labels('success').inc();
    watcher?.update(policyFiles(candidate.config));
    const ms = Math.round((performance.now() - (changedAt ?? t0)) * 10) / 10;
    logger.info(
      { ms, since: changedAt === undefined ? 'request' : 'file change', workers: workers.length, routes: candidate.config.routes.length, report_mode: reportModeSummary(candidate.config) },
      'policy reloaded on every worker',
    );
    return { ok: true, ms, warnings: candidate.warnings };
  };

  // One at a time; changes arriving meanwhile are folded into one more reload (as runtime/reloader.ts).
  let queued: Promise<ReloadResult> | undefined;
  /** The lowest-numbered worker serving reports reloads to the alert rules: one alert per failed reload. */
  const reported = (result: ReloadResult): ReloadResult => {
    const reporter = live()[0];
    if (reporter) send(reporter[1], { wxgw: 'reload-result', result });
    return result;
  };
  const reload = (changedAt?: number): Promise<ReloadResult> => {
    if (!reloading) {
      const running = reloadOnce(changedAt)
        .then(reported)
        .finally(() => (reloading = undefined));
      reloading = running;
      return running;
    }
    queued ??= reloading.then(
      () => ((queued = undefined), reload(changedAt)),
      () => ((queued = undefined), reload(changedAt)),
    );
    return queued;
  };
  watcher = watchFiles(policyFiles(inForce.loaded.config), (firstEventAt) => {
    reload(firstEventAt).catch((err: unknown) => logger.error({ err }, 'policy reload failed'));
  });

  // ---- admin: readiness and metrics over every worker ----
  const draining: DrainState = { draining: false };
  const open: Listener[] = [];
  // A worker being replaced is a warning while others serve: the connections go to those, and
  // taking the whole instance out of the balancer for it would cost more than it saves.
  const notServing = (): string[] => [...slots.values()].filter((s) => !s.serving).map((s) => `worker ${s.n}: not serving (starting or being replaced)`);
  const readiness = {
    async failing(): Promise<string[]> {
      const failing = draining.draining ? ['draining: shutting down, new connections go elsewhere'] : [];
      const serving = live();
      if (serving.length === 0) failing.push('no worker serving');
      const asked = await Promise.all(
        serving.map(async ([s, w]) => {
          const r = await ask(w, 'readiness');
          return r ? r.failing.map((f) => `worker ${s.n}: ${f}`) : [`worker ${s.n}: no answer within ${ASK_TIMEOUT_MS} ms`];
        }),
      );
      return [...failing, ...asked.flat()];
    },
    async warnings(): Promise<string[]> {
      const asked = await Promise.all(live().map(([, w]) => ask(w, 'readiness')));
      return [...notServing(), ...new Set(asked.flatMap((r) => r?.warnings ?? []))];
    },
  };
  const metrics = {
    contentType: registry.contentType,
    async metrics(): Promise<string> {
      const perWorker = await Promise.all(live().map(([, w]) => ask(w, 'metrics')));
      const all: MetricObjectWithValues<MetricValue<string>>[][] = perWorker.flatMap((r) => (r ? [r.metrics] : []));
      all.push(await registry.getMetricsAsJSON());
      for (const list of all) for (const m of list) if (AGGREGATE[m.name]) m.aggregator = AGGREGATE[m.name]!;
      return AggregatorRegistry.aggregate(all).metrics();
    },
  };
  const { server } = inForce.loaded.config;
  let admin: AddressInfo | undefined;
  try {
    admin = server.admin
      ? await bindAdmin(open, server.admin.listen, server.admin.pos, readiness, metrics, draining, () => {
          const { view, hash } = policyView(inForce.loaded.config);
          return { hash, loadedAt: inForce.at, view };
        })
      : undefined;
  } catch (err) {
    stopping = true;
    watcher.close();
    for (const [, w] of live()) send(w, { wxgw: 'shutdown' });
    await exits();
    await store?.close();
    throw err;
  }

  let stopped: Promise<boolean> | undefined;
  const shutdown = (): Promise<boolean> => {
    stopped ??= (async () => {
      stopping = true;
      watcher?.close();
      draining.draining = true;
      const { drain_delay, shutdown_timeout } = inForce.loaded.config.server;
      for (const s of slots.values()) if (s.worker) send(s.worker, { wxgw: 'shutdown' });
      // Each worker cuts what is left at shutdown_timeout itself; this only catches one that hangs.
      const backstop = setTimeout(() => {
        logger.error('workers still running past drain_delay + shutdown_timeout; killing them');
        for (const s of slots.values()) s.worker?.process.kill('SIGKILL');
      }, drain_delay + shutdown_timeout + 5_000);
      const codes = await exits();
      clearTimeout(backstop);
      // Their last lines (how the drain went) are still in the pipes when they exit.
      await Promise.all([...slots.values()].map((s) => s.relayed));
      await drain(open, draining, { delayMs: 0, timeoutMs: 1_000 }, logger);
      await store?.close();
      return codes.every((c) => c === 0);
    })();
    return stopped;
  };

  const at = (l: { listen: { host: string; port: number } } | null): string | undefined => (l ? `${l.listen.host}:${l.listen.port}` : undefined);
  logger.info(
    { https: at(server.https) ?? 'off (TLS terminated by a trusted proxy)', http: at(server.http?.mode === 'redirect' ? server.http : null), admin: admin && `${admin.address}:${admin.port}`, egress: at(server.egress ?? null), pay_egress: at(inForce.loaded.config.wechatpay?.egress ?? null), workers: count, store: store ? 'memory, held by the primary' : 'redis, a connection per worker', routes: inForce.loaded.config.routes.length, report_mode: reportModeSummary(inForce.loaded.config) },
    'wxgw listening',
  );
  return { workers: count, admin, reload, shutdown };
}
