// The metrics of asynchronous callback delivery, on the gateway's registry:
//   wxgw_callback_queue_total{route,event}   queued | duplicate | delivered | retried | dead
//   wxgw_callback_queue_depth                 messages queued, not yet delivered (the whole queue)
//   wxgw_callback_dead_letters{route}         dead letters kept for the route
// The gauges are read from the queue at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';

export type DeliveryEvent = 'queued' | 'duplicate' | 'delivered' | 'retried' | 'dead';

export interface DeliveryGauges {
  depth(): Promise<number>;
  /** Each async route's dead-letter count. */
  dead(): Promise<Iterable<[route: string, count: number]>>;
}

export class DeliveryMetrics {
  private readonly events: Counter<'route' | 'event'>;

  constructor(registry: Registry, gauges: DeliveryGauges) {
    this.events = new Counter({
      name: 'wxgw_callback_queue_total',
      help: 'Callbacks of delivery: async routes, by what happened: queued, duplicate (a retry of one already queued, not queued again), delivered, retried (an attempt failed), dead (out of attempts).',
      labelNames: ['route', 'event'],
      registers: [registry],
    });
    new Gauge({
      name: 'wxgw_callback_queue_depth',
      help: 'Callbacks queued for delivery and not yet delivered or dead, over all routes (every instance on the same Redis sees the same queue).',
      registers: [registry],
      async collect() {
        try {
          this.set(await gauges.depth());
        } catch {
          // The store is down: the store-up gauge says so; no value beats a stale one.
          this.reset();
        }
      },
    });
    new Gauge({
      name: 'wxgw_callback_dead_letters',
      help: 'Dead letters kept for the route: callbacks delivery gave up on, to inspect and replay with `wxgw deliveries`.',
      labelNames: ['route'],
      registers: [registry],
      async collect() {
        this.reset();
        try {
          for (const [route, n] of await gauges.dead()) this.set({ route }, n);
        } catch {
          // As above.
        }
      },
    });
  }

  count(route: string, event: DeliveryEvent): void {
    this.events.inc({ route, event });
  }
}
