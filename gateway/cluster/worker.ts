// One worker of `wxgw start` with server.workers > 1: it serves the traffic listeners (whose
// sockets the primary holds, node:cluster) with the policy the primary sends, and does what the
// primary says: build a reload's snapshot and wait for the verdict, report metrics and
// readiness, drain. Signals are the primary's to handle: a SIGTERM sent to the whole process
// group (systemd, a terminal's Ctrl-C) must not make a worker leave on its own, which the
// primary would take for a crash.
import cluster from 'node:cluster';
import type { LoadedPolicy } from '../main.js';
import { startGateway, type GatewayHandle } from '../main.js';
import { createLogger } from '../observability/logger.js';
import { readerGone } from '../observability/log-destination.js';
import { ipcStore, type IpcPort } from '../store/ipc-store.js';
import { PolicyError } from '../types/policy.js';
import { arrive } from './carry.js';
import { isMessage, type ToPrimary, type ToWorker } from './messages.js';

export async function runWorker(): Promise<void> {
  const slot = Number(process.env.WXGW_WORKER ?? cluster.worker?.id ?? 0);
  for (const signal of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.on(signal, () => undefined);
  const logger = createLogger().child({ worker: slot });
  let leaving = false;
  const send = (m: ToPrimary): void => {
    if (process.connected) process.send!(m);
  };
  /** Sends the last word before exiting: once it is written, not merely queued. */
  const fail = (m: ToPrimary & { wxgw: 'failed' }): void => {
    leaving = true;
    if (!process.connected) process.exit(1);
    process.send!(m, undefined, {}, () => process.exit(1));
  };

  let gateway: GatewayHandle | undefined;
  let candidate: LoadedPolicy | undefined;
  let verdict: ((commit: boolean) => void) | undefined;
  let reloadId = -1;
  const leave = (stop: (g: GatewayHandle) => Promise<void>): void => {
    if (leaving) return;
    leaving = true;
    verdict?.(false);
    const done = gateway ? stop(gateway) : Promise.resolve();
    done.then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'worker shutdown failed');
        process.exit(1);
      },
    );
  };

  const start = async (file: string, loaded: LoadedPolicy): Promise<void> => {
    try {
      gateway = await startGateway({
        config: file,
        loaded,
        logger,
        // The memory store lives in the primary, so every worker counts against the same limits.
        ...(loaded.config.store.kind === 'memory' && { store: ipcStore(process as unknown as IpcPort) }),
        coordinated: {
          candidate: async () => {
            if (!candidate) throw new Error('no policy was sent for this reload');
            return candidate;
          },
          confirm: () => {
            send({ wxgw: 'prepared', id: reloadId });
            return new Promise<boolean>((resolve) => (verdict = resolve));
          },
        },
      });
      send({ wxgw: 'listening' });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      fail({ wxgw: 'failed', message, ...(err instanceof PolicyError && { diagnostics: err.diagnostics }) });
    }
  };

  const prepare = async (id: number, carried: Parameters<typeof arrive>[0], changedMsAgo: number | undefined): Promise<void> => {
    reloadId = id;
    try {
      candidate = await arrive(carried);
      // performance.now() is this process's own clock: the primary says how long ago, not when.
      const result = await gateway!.reload(changedMsAgo === undefined ? undefined : performance.now() - changedMsAgo);
      send(result.ok ? { wxgw: 'reloaded', id, ok: true } : { wxgw: 'reloaded', id, ok: false, message: result.message, diagnostics: result.diagnostics });
    } catch (err) {
      send({ wxgw: 'reloaded', id, ok: false, message: err instanceof Error ? err.message : String(err) });
    } finally {
      candidate = undefined;
      verdict = undefined;
    }
  };

  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    const msg = m as ToWorker;
    switch (msg.wxgw) {
      case 'start':
        void arrive(msg.policy).then(
          (loaded) => start(msg.file, loaded),
          (err: unknown) => fail({ wxgw: 'failed', message: `the policy could not be taken over from the primary: ${String(err)}` }),
        );
        return;
      case 'prepare':
        void prepare(msg.id, msg.policy, msg.changedMsAgo);
        return;
      case 'decide':
        if (msg.id === reloadId) verdict?.(msg.commit);
        return;
      case 'metrics':
        void gateway?.metrics.registry.getMetricsAsJSON().then((metrics) => send({ wxgw: 'metrics', id: msg.id, metrics }));
        return;
      case 'readiness':
        if (gateway) send({ wxgw: 'readiness', id: msg.id, failing: gateway.readiness.failing(), warnings: gateway.readiness.warnings?.() ?? [] });
        return;
      case 'reload-result':
        gateway?.reportReload(msg.result);
        return;
      case 'shutdown':
        leave((g) => g.shutdown());
        return;
    }
  });
  // The primary is gone (killed, crashed): Node's cluster ends this worker at once (its own
  // 'disconnect' listener exits; requests in flight are cut), and the primary read this worker's
  // stdout: the lines still buffered have nowhere to go and must not hold the exit. Ahead of
  // Node's listener, so that it runs before that exit.
  process.prependListener('disconnect', () => readerGone(logger));
  // A send racing the primary's exit fails with EPIPE; the disconnect above already handles that.
  cluster.worker?.on('error', (err: unknown) => logger.debug({ err }, 'message to the primary not delivered'));
  send({ wxgw: 'hello' });
}
