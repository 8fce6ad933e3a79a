// Asynchronous callback delivery as the running gateway has it: the queue in the policy's store,
// its metrics, what the request path queues through, and the worker. Created once at start and
// kept across reloads (the queue and what it holds outlive every snapshot); the worker and the
// Redis connections start with the first policy in force that has a `delivery: async` route.
import type { DeliveryIntake } from '../guards/async-delivery.js';
import type { Logger } from '../observability/logger.js';
import { DeliveryMetrics } from '../observability/delivery-metrics.js';
import type { Registry } from 'prom-client';
import { createDeliveryQueue } from '../store/create-delivery-queue.js';
import { DELIVERY_QUEUE_DEFAULTS } from '../store/delivery-queue.js';
import type { Snapshot, UpstreamCaller } from '../snapshot.js';
import type { StoreConfig } from '../types/policy.js';
import { DeliveryWorker, asyncRouteNames } from './worker.js';

export interface Deliveries {
  readonly intake: DeliveryIntake;
  /** Starts delivering once a policy with an async route is in force; call with every snapshot put in force. */
  follow(snapshot: Snapshot): void;
  /** Stops taking messages, lets the ones in flight finish within `drainMs`, and closes the queue. */
  stop(drainMs: number): Promise<void>;
}

export function createDeliveries(opts: { store: StoreConfig; source: { readonly current: Snapshot }; caller: UpstreamCaller; logger: Logger; registry: Registry }): Deliveries {
  const cfg = opts.store.delivery_queue ?? DELIVERY_QUEUE_DEFAULTS;
  const queue = createDeliveryQueue(opts.store);
  let worker: DeliveryWorker | undefined;
  const metrics = new DeliveryMetrics(opts.registry, {
    depth: () => (worker ? queue.depth() : Promise.resolve(0)),
    dead: async () => {
      if (!worker) return [];
      const routes = asyncRouteNames(opts.source.current);
      return Promise.all(routes.map(async (r): Promise<[string, number]> => [r, await queue.deadCount(r)]));
    },
  });
  return {
    intake: { queue, count: (route, event) => metrics.count(route, event) },
    follow(snapshot) {
      if (worker || asyncRouteNames(snapshot).length === 0) return;
      worker = new DeliveryWorker({ queue, source: opts.source, caller: opts.caller, logger: opts.logger, metrics, concurrency: cfg.concurrency, takeoverAfterMs: cfg.takeover_after });
      worker.start();
      opts.logger.info({ queue: queue.kind, concurrency: cfg.concurrency }, 'async callback delivery started');
    },
    async stop(drainMs) {
      await worker?.stop(drainMs);
      await queue.close();
      await worker?.finished();
    },
  };
}
