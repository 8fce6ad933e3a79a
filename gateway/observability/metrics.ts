// The gateway's Prometheus metrics: one registry per running gateway (several gateways in one
// process, as in the tests, keep their own). Labels are bounded: route names from the policy,
// never raw paths, client addresses or openids; methods outside the gateway's list are OTHER.
//
//   new Metrics(certificates, store, droppedLogLines)  all read at scrape time (expiry and
//                                 store-up gauges, dropped log lines)
//   metrics.route(name)           pre-bound children for one route; cached per name
//   metrics.registry.metrics()    the text exposition for /metrics

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PACKAGE_ROOT } from '../package-root.js';
import type { LoadedCertificate } from '../tls/load.js';

const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'] as const;
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/** Requests that matched no route (404, 405, refusals before routing). */
const NO_ROUTE = '(none)';

// Seconds; a gateway answers its own refusals in well under a millisecond and upstreams up to
// their timeout.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Child = { inc(value?: number): void };
type Observer = { observe(value: number): void };

/** One route's children, bound once so a request costs array indexing, not label hashing. */
export class RouteMetrics {
  private readonly requests: Child[] = [];

  constructor(
    private readonly name: string,
    private readonly counter: Counter<'route' | 'method' | 'status_class'>,
    readonly duration: Observer,
    readonly upstreamDuration: Observer,
    private readonly upstreamErrorCounter: Counter<'route' | 'reason'>,
  ) {}

  request(method: string, status: number): void {
    let m = METHODS.indexOf(method as (typeof METHODS)[number]);
    if (m < 0) m = METHODS.length;
    const c = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1;
    const i = m * CLASSES.length + c;
    let child = this.requests[i];
    if (!child) {
      child = this.counter.labels(this.name, METHODS[m] ?? 'OTHER', CLASSES[c]!);
      this.requests[i] = child;
    }
    child.inc();
  }

  upstreamError(reason: string): void {
    this.upstreamErrorCounter.labels(this.name, reason).inc();
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly routes = new Map<string, RouteMetrics>();
  private readonly requests: Counter<'route' | 'method' | 'status_class'>;
  private readonly duration: Histogram<'route'>;
  private readonly upstreamDuration: Histogram<'route'>;
  private readonly upstreamErrors: Counter<'route' | 'reason'>;
  readonly decisions: Counter<'reason'>;
  readonly reloads: Counter<'result'>;
  private readonly shadowDecisions: Counter<'route' | 'rule' | 'reason'>;
  private readonly shadowChildren = new Map<string, Child>();
  /** WebSocket sessions open now, by route (proxy/websocket.ts). */
  readonly websocketsOpen: Gauge<'route'>;
  /** WebSocket message bytes, by route and direction: `in` from the client, `out` to it. */
  readonly websocketBytes: Counter<'route' | 'direction'>;
  /** Uses of a rotated secret's previous value, by key path: once it stays still, the old value can go. */
  readonly secretPreviousUsed: Counter<'secret'>;

  constructor(
    certificates: () => readonly LoadedCertificate[],
    store: () => { kind: string; connected: boolean },
    droppedLogLines: () => number = () => 0,
    /** Key paths of ${file:...} values whose file could not be read at the last reload (the old value is kept). */
    unreadableFiles: () => readonly string[] = () => [],
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'wxgw_requests_total',
      help: 'Requests answered on the traffic listener, by route, method and status class.',
      labelNames: ['route', 'method', 'status_class'],
      registers,
    });
    this.duration = new Histogram({
      name: 'wxgw_request_duration_seconds',
      help: 'Time from request to the end of the answer, by route.',
      labelNames: ['route'],
      buckets: BUCKETS,
      registers,
    });
    this.upstreamDuration = new Histogram({
      name: 'wxgw_upstream_duration_seconds',
      help: 'Time from forwarding a request to the upstream answering (or failing), by route.',
      labelNames: ['route'],
      buckets: BUCKETS,
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'wxgw_upstream_errors_total',
      help: 'Upstream requests that failed (unreachable, timed out), by route and reason.',
      labelNames: ['route', 'reason'],
      registers,
    });
    this.decisions = new Counter({
      name: 'wxgw_decisions_total',
      help: 'Requests the gateway refused or redirected itself, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.reloads = new Counter({
      name: 'wxgw_reloads_total',
      help: 'Policy reloads (the policy with its certificates), by result: success, invalid, restart_required.',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['success', 'invalid', 'restart_required']) this.reloads.inc({ result }, 0);
    this.shadowDecisions = new Counter({
      name: 'wxgw_shadow_decisions_total',
      help: 'Requests a rule in report mode would have refused (or answers it would have masked) and let through, by route, rule and reason.',
      labelNames: ['route', 'rule', 'reason'],
      registers,
    });
    this.websocketsOpen = new Gauge({
      name: 'wxgw_websockets_open',
      help: 'WebSocket sessions open through the gateway, by route.',
      labelNames: ['route'],
      registers,
    });
    this.websocketBytes = new Counter({
      name: 'wxgw_websocket_bytes_total',
      help: 'WebSocket message payload bytes relayed, by route and direction (in: from the client, out: to the client).',
      labelNames: ['route', 'direction'],
      registers,
    });
    this.secretPreviousUsed = new Counter({
      name: 'wxgw_secret_previous_used_total',
      help: 'Requests verified or decrypted with the previous value of a rotated secret (inside its window), by key path.',
      labelNames: ['secret'],
      registers,
    });
    new Gauge({
      name: 'wxgw_secret_file_unreadable',
      help: '1 for each ${file:...} value whose file could not be read at the last reload: the value read before stays in force. By key path.',
      labelNames: ['key'],
      registers,
      collect() {
        this.reset();
        for (const key of unreadableFiles()) this.labels(key).set(1);
      },
    });
    new Gauge({
      name: 'wxgw_certificate_expiry_seconds',
      help: 'Seconds until the leaf of each configured certificate expires (negative once expired).',
      labelNames: ['certificate'],
      registers,
      collect() {
        // Read at scrape time from the policy in force: a renewal or a removed file shows at once.
        this.reset();
        const now = Date.now();
        for (const c of certificates()) this.labels(c.certFile).set(Math.round((c.notAfter.getTime() - now) / 1000));
      },
    });
    new Gauge({
      name: 'wxgw_store_up',
      help: '1 while the state store (rate limits, nonces, logins) can answer, 0 while it cannot; by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        const s = store();
        this.reset();
        this.labels(s.kind).set(s.connected ? 1 : 0);
      },
    });
    let droppedSeen = 0;
    new Counter({
      name: 'wxgw_log_lines_dropped_total',
      help: 'Log lines dropped because the log destination (stdout) stopped accepting writes and its buffer (WXGW_LOG_BUFFER) was full.',
      registers,
      collect() {
        // The destination counts; this only catches up at scrape time, nothing per line.
        const now = droppedLogLines();
        this.inc(now - droppedSeen);
        droppedSeen = now;
      },
    });
    new Gauge({
      name: 'wxgw_build_info',
      help: 'Always 1; the labels name the running build.',
      labelNames: ['version', 'node_version'],
      registers,
    })
      .labels(VERSION, process.version)
      .set(1);
  }

  /** Labels are the policy's: a route name, a rule kind, a reason from errors.ts (or `masked`). */
  shadowDecision(route: string, rule: string, reason: string): void {
    const key = `${route}\0${rule}\0${reason}`;
    let child = this.shadowChildren.get(key);
    if (!child) {
      child = this.shadowDecisions.labels(route, rule, reason);
      this.shadowChildren.set(key, child);
    }
    child.inc();
  }

  route(name: string | undefined): RouteMetrics {
    const key = name ?? NO_ROUTE;
    let r = this.routes.get(key);
    if (!r) {
      r = new RouteMetrics(key, this.requests, this.duration.labels(key), this.upstreamDuration.labels(key), this.upstreamErrors);
      this.routes.set(key, r);
    }
    return r;
  }
}
