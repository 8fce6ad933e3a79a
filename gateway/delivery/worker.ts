// Delivers queued callbacks (`delivery: async`) to their routes' upstreams. One worker per
// gateway; it outlives snapshots and reads each message's route (upstream, timeout, retry) from
// the policy in force when it attempts it.
//
// Order: messages with one order key (one WeChat user) are delivered one at a time, in the order
// this instance took them from the queue; a message waiting for its retry holds back that user's
// later messages, never another user's. Other instances on the same Redis take other messages,
// so across instances (and for a message taken over from a dead one) the order per user is not
// guaranteed; the Idempotency-Key is what a backend relies on.
//
// Retries: attempt n failing (no 2xx answer, or no answer) waits backoff * 2^(n-1), at most
// max_backoff, the second half of it random, before attempt n+1; after `attempts` the message is
// a dead letter. On stop nothing new is taken, attempts in flight get `drainMs`, and whatever is
// still held stays in the queue for the next instance (Redis: taken over after takeover_after).
import type { Logger } from '../observability/logger.js';
import type { DeliveryMetrics } from '../observability/delivery-metrics.js';
import type { DeliveryQueue, TakenMessage } from '../store/delivery-queue.js';
import type { RouteTarget, Snapshot, UpstreamCaller } from '../snapshot.js';
import type { DeliveryRetryConfig } from '../types/policy.js';

/** How long one take() waits for a message before looking again (and noticing a stop). */
const POLL_MS = 1000;
/** Taken but not yet delivered, per slot of concurrency: enough that one slow user does not idle the rest. */
const HELD_PER_SLOT = 8;
/** Between two attempts to read a queue that failed (Redis down). */
const READ_RETRY_MS = 1000;

interface Item {
  readonly taken: TakenMessage;
  attempts: number;
  timer?: NodeJS.Timeout;
}

interface RouteDelivery {
  readonly target: RouteTarget;
  readonly retry: DeliveryRetryConfig;
}

export interface WorkerOptions {
  queue: DeliveryQueue;
  source: { readonly current: Snapshot };
  caller: UpstreamCaller;
  logger: Logger;
  metrics: DeliveryMetrics;
  concurrency: number;
  /** Redis: held messages are confirmed every third of this, so no other instance takes them over. */
  takeoverAfterMs: number;
  /** [0, 1): the jitter's source (tests pass a fixed one). */
  random?: () => number;
}

/** The async routes of a snapshot by name, found once per snapshot. */
const routesOf = new WeakMap<Snapshot, Map<string, RouteDelivery>>();

function asyncRoutes(snapshot: Snapshot): Map<string, RouteDelivery> {
  let routes = routesOf.get(snapshot);
  if (routes) return routes;
  routes = new Map();
  for (const r of snapshot.policy.routes) {
    const retry = (r.wechat_callback ?? r.wechatpay_notify)?.async?.retry;
    const path = r.match.path ?? r.match.path_prefix;
    if (!retry || path === undefined) continue;
    const found = snapshot.routes.lookup('POST', r.match.host ?? '', path);
    if (found.kind === 'found' && found.route.target.name === r.name) routes.set(r.name, { target: found.route.target, retry });
  }
  routesOf.set(snapshot, routes);
  return routes;
}

/** The names of the async routes in force (for the dead-letter gauge). */
export function asyncRouteNames(snapshot: Snapshot): string[] {
  return [...asyncRoutes(snapshot).keys()];
}

export function backoffMs(retry: DeliveryRetryConfig, failed: number, random: () => number): number {
  const full = Math.min(retry.max_backoff, retry.backoff * 2 ** Math.min(failed - 1, 40));
  return Math.round(full / 2 + (random() * full) / 2);
}

export class DeliveryWorker {
  private running = false;
  private readonly held = new Map<string, Item>();
  private readonly lanes = new Map<string, Item[]>();
  private readonly runnable: Item[] = [];
  private inFlight = 0;
  private readonly capacity: number;
  private heartbeat: NodeJS.Timeout | undefined;
  private roomWaiter: (() => void) | undefined;
  private idleWaiter: (() => void) | undefined;
  private fetching: Promise<void> | undefined;
  private readonly random: () => number;
  private lastReadError = 0;

  constructor(private readonly o: WorkerOptions) {
    this.capacity = o.concurrency * HELD_PER_SLOT;
    this.random = o.random ?? Math.random;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.fetching = this.fetchLoop();
    this.heartbeat = setInterval(() => {
      if (this.held.size === 0) return;
      this.o.queue.hold([...this.held.keys()]).catch((err: unknown) => this.o.logger.warn({ err }, 'delivery queue: held callbacks could not be confirmed'));
    }, Math.max(100, Math.floor(this.o.takeoverAfterMs / 3)));
    this.heartbeat.unref();
  }

  /** Stops taking messages and waits up to `drainMs` for the attempts in flight. */
  async stop(drainMs: number): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.roomWaiter?.();
    for (const item of this.held.values()) clearTimeout(item.timer);
    this.runnable.length = 0;
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.idleWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    clearInterval(this.heartbeat);
    const left = this.held.size;
    if (left > 0) this.o.logger.info({ left }, 'delivery stopped; callbacks not yet delivered stay queued');
  }

  /** Resolves once the fetch loop has returned (after stop and the queue's close). */
  finished(): Promise<void> {
    return this.fetching ?? Promise.resolve();
  }

  private async fetchLoop(): Promise<void> {
    while (this.running) {
      const room = this.capacity - this.held.size;
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.roomWaiter = resolve));
        this.roomWaiter = undefined;
        continue;
      }
      let taken: TakenMessage[];
      try {
        taken = await this.o.queue.take(room, POLL_MS);
      } catch (err) {
        if (!this.running) return;
        if (Date.now() - this.lastReadError > 30_000) {
          this.lastReadError = Date.now();
          this.o.logger.warn({ err }, 'delivery queue cannot be read; retrying');
        }
        await new Promise((r) => setTimeout(r, READ_RETRY_MS).unref());
        continue;
      }
      // Taken after a stop: left to the queue (Redis: for takeover), never half-delivered.
      if (!this.running) return;
      for (const t of taken) this.admit(t);
      this.pump();
    }
  }

  private admit(taken: TakenMessage): void {
    if (this.held.has(taken.id)) return;
    const item: Item = { taken, attempts: 0 };
    this.held.set(taken.id, item);
    const order = taken.message.order;
    const lane = this.lanes.get(order);
    if (lane) lane.push(item);
    else {
      this.lanes.set(order, [item]);
      this.runnable.push(item);
    }
  }

  private pump(): void {
    while (this.running && this.inFlight < this.o.concurrency && this.runnable.length > 0) {
      const item = this.runnable.shift()!;
      this.inFlight++;
      this.attempt(item).finally(() => {
        this.inFlight--;
        if (this.inFlight === 0) this.idleWaiter?.();
        this.pump();
      });
    }
  }

  private async attempt(item: Item): Promise<void> {
    const { id, message } = item.taken;
    const route = asyncRoutes(this.o.source.current).get(message.route);
    item.attempts++;
    if (!route) {
      // The policy in force has no such async route any more: kept for an operator to replay.
      await this.bury(item, 'route_not_async');
      return;
    }
    const started = performance.now();
    const headers = { ...message.headers, 'idempotency-key': message.key, 'x-wx-delivery-attempt': String(item.attempts) };
    let res: Awaited<ReturnType<UpstreamCaller['call']>>;
    try {
      res = await this.o.caller.call(route.target.upstream, { path: message.path, headers, body: message.body }, route.target.timeout);
    } catch (err) {
      this.o.logger.error({ route: message.route, idempotency_key: message.key, err }, 'callback delivery attempt failed inside the gateway');
      res = { failed: 'internal_error' };
    }
    const log = { route: message.route, idempotency_key: message.key, attempt: item.attempts, upstream_ms: Math.round(performance.now() - started) };
    if ('statusCode' in res && res.statusCode >= 200 && res.statusCode < 300) {
      try {
        await this.o.queue.ack(id);
      } catch (err) {
        // Still in the queue: delivered again after the takeover time, which the key makes harmless.
        this.o.logger.warn({ ...log, err }, 'callback delivered but not removed from the queue; it will be delivered again');
      }
      this.o.metrics.count(message.route, 'delivered');
      this.o.logger.info({ ...log, status: res.statusCode, queued_ms: Date.now() - message.queuedAt }, 'callback delivered');
      this.finish(item);
      return;
    }
    const error = 'statusCode' in res ? `status ${res.statusCode}` : res.failed;
    if (item.attempts >= route.retry.attempts) {
      await this.bury(item, error);
      return;
    }
    if (!this.running) return;
    const wait = backoffMs(route.retry, item.attempts, this.random);
    this.o.metrics.count(message.route, 'retried');
    this.o.logger.warn({ ...log, error, retry_in_ms: wait }, 'callback delivery failed; retrying');
    item.timer = setTimeout(() => {
      item.timer = undefined;
      if (!this.running) return;
      this.runnable.push(item);
      this.pump();
    }, wait);
  }

  private async bury(item: Item, error: string): Promise<void> {
    const { message } = item.taken;
    try {
      await this.o.queue.bury(item.taken, item.attempts, error);
      this.o.metrics.count(message.route, 'dead');
      this.o.logger.error({ route: message.route, idempotency_key: message.key, attempts: item.attempts, error }, 'callback delivery gave up; kept as a dead letter (wxgw deliveries)');
    } catch (err) {
      // Still held in the queue: taken over and tried again after the takeover time.
      this.o.logger.error({ route: message.route, idempotency_key: message.key, err }, 'callback delivery gave up but the dead letter could not be written; it stays queued');
    }
    this.finish(item);
  }

  /** The message leaves this worker: its user's next one may go. */
  private finish(item: Item): void {
    const { id, message } = item.taken;
    this.held.delete(id);
    const lane = this.lanes.get(message.order);
    if (lane) {
      lane.shift();
      if (lane.length > 0) this.runnable.push(lane[0]!);
      else this.lanes.delete(message.order);
    }
    this.roomWaiter?.();
  }
}
