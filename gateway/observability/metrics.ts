// The gateway's Prometheus metrics: one registry per running gateway (several gateways in one
// process, as in the tests, keep their own). Labels are bounded: route names from the policy,
// never raw paths, client addresses or openids; methods outside the gateway's list are OTHER.
//
//   new Metrics(certificates, store, droppedLogLines, live)  all read at scrape time (expiry and
//                                 store-up gauges, dropped log lines, open connections, readiness)
//   metrics.route(name)           pre-bound children for one route; cached per name
//   metrics.handshake(socket) / handshakeFailed(err)   TLS handshakes, failures by tlsFailure(err)
//   metrics.storeTimer(kind)      (operation, seconds) => void, for store/timed-store.ts
//   metrics.policyInForce(hash, at)  the one wxgw_policy_info series and the last reload time
//   metrics.registry.metrics()    the text exposition for /metrics

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PACKAGE_ROOT } from '../package-root.js';
import type { LoadedCertificate } from '../tls/load.js';
import type { AlertCounters } from './alerts/delivery.js';

const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'] as const;
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/** Requests that matched no route (404, 405, refusals before routing). */
const NO_ROUTE = '(none)';

// Seconds; a gateway answers its own refusals in well under a millisecond and upstreams up to
// their timeout.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// Seconds; a memory store answers in microseconds, Redis in a round trip, a timeout at
// store.command_timeout (250 ms by default).
const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Why a TLS handshake failed, as few values as an operator acts on. */
export const TLS_FAILURES = ['timeout', 'protocol', 'no_shared_cipher', 'certificate_rejected', 'client_closed', 'other'] as const;
export type TlsFailure = (typeof TLS_FAILURES)[number];

/**
 * OpenSSL's reason, read from Node's error code: `protocol` for a hello that is not TLS (plain
 * HTTP, garbage) or a version the policy refuses; `certificate_rejected` for a client's alert
 * about the certificate served (unknown CA, a name it does not cover: a client asking for an SNI
 * no certificate covers gets the first one); `client_closed` for a client gone mid-handshake.
 */
export function tlsFailure(err: NodeJS.ErrnoException): TlsFailure {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ERR_SSL_NO_SHARED_CIPHER') return 'no_shared_cipher';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'client_closed';
  if (code.startsWith('ERR_SSL_') && /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/.test(code)) return 'certificate_rejected';
  if (code.startsWith('ERR_SSL_')) return 'protocol';
  return 'other';
}

/** What the gateway reads at scrape time besides certificates and the store. */
export interface LiveSources {
  /** Each listener's name and how many TCP connections it holds now. */
  connections?: () => Iterable<{ readonly name: string; readonly sockets: { readonly size: number } }>;
  /** Whether /readyz would answer 200 now. */
  ready?: () => boolean;
}

type Child = { inc(value?: number): void };
type Observer = { observe(value: number): void };

/**
 * Body bytes on one route: added up here and handed to the counter when it is read (a scrape),
 * so a request costs an addition, not prom-client's label hashing and a fresh object.
 */
class PendingCount implements Child {
  private pending = 0;
  private seen = false;

  constructor(private readonly child: Child) {}

  inc(value = 1): void {
    this.pending += value;
    this.seen = true;
  }

  /** Into the counter: a route that counted only zeros still shows its series at 0, as before. */
  flush(): void {
    if (!this.seen) return;
    this.child.inc(this.pending);
    this.pending = 0;
  }
}

/**
 * One route's children, bound once. The per-request counts (requests by method and status class,
 * body bytes) are kept as plain numbers and reach prom-client when the registry is read
 * (Metrics' collect hooks): the exposition is the same, at the cost of additions per request.
 */
export class RouteMetrics {
  private readonly requests: (Child | undefined)[] = [];
  /** Requests counted since the last read, by the same index as `requests`. */
  private readonly pendingRequests = new Float64Array((METHODS.length + 1) * CLASSES.length);
  readonly bytesIn: PendingCount;
  readonly bytesOut: PendingCount;

  constructor(
    private readonly name: string,
    private readonly counter: Counter<'route' | 'method' | 'status_class'>,
    readonly duration: Observer,
    readonly upstreamDuration: Observer,
    private readonly upstreamErrorCounter: Counter<'route' | 'reason'>,
    private readonly refusalCounter: Counter<'route' | 'reason'>,
    /** Body bytes received from clients and sent to them on this route's requests. */
    bytesIn: Child,
    bytesOut: Child,
  ) {
    this.bytesIn = new PendingCount(bytesIn);
    this.bytesOut = new PendingCount(bytesOut);
  }

  private readonly refusals = new Map<string, Child>();

  /** A request the gateway refused itself, with a reason of errors.ts. */
  refusal(reason: string): void {
    let child = this.refusals.get(reason);
    if (!child) {
      child = this.refusalCounter.labels(this.name, reason);
      this.refusals.set(reason, child);
    }
    child.inc();
  }

  request(method: string, status: number): void {
    let m = METHODS.indexOf(method as (typeof METHODS)[number]);
    if (m < 0) m = METHODS.length;
    const c = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1;
    this.pendingRequests[m * CLASSES.length + c]!++;
  }

  /** Hands the requests counted since the last read to the counter. */
  flushRequests(): void {
    const pending = this.pendingRequests;
    for (let i = 0; i < pending.length; i++) {
      const n = pending[i]!;
      if (n === 0) continue;
      let child = this.requests[i];
      if (!child) {
        const m = Math.floor(i / CLASSES.length);
        child = this.counter.labels(this.name, METHODS[m] ?? 'OTHER', CLASSES[i % CLASSES.length]!);
        this.requests[i] = child;
      }
      child.inc(n);
      pending[i] = 0;
    }
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
  private readonly callbackReplays: Counter<'route' | 'result'>;
  /** WebSocket sessions open now, by route (proxy/websocket.ts). */
  readonly websocketsOpen: Gauge<'route'>;
  /** WebSocket message bytes, by route and direction: `in` from the client, `out` to it. */
  readonly websocketBytes: Counter<'route' | 'direction'>;
  private readonly refusals: Counter<'route' | 'reason'>;
  private readonly bytesIn: Counter<'route'>;
  private readonly bytesOut: Counter<'route'>;
  private readonly handshakes: Counter<'protocol'>;
  private readonly handshakeFailures: Counter<'reason'>;
  private readonly storeDuration: Histogram<'kind' | 'operation'>;
  private readonly policyInfo: Gauge<'hash'>;
  private readonly lastReload: Gauge;
  /** Uses of a rotated secret's previous value, by key path: once it stays still, the old value can go. */
  readonly secretPreviousUsed: Counter<'secret'>;
  /** Alert messages (observability/alerts/): fired by rule; sent, failed and dropped by rule and channel. */
  readonly alerts: AlertCounters;

  constructor(
    certificates: () => readonly LoadedCertificate[],
    store: () => { kind: string; connected: boolean },
    droppedLogLines: () => number = () => 0,
    /** Key paths of ${file:...} values whose file could not be read at the last reload (the old value is kept). */
    unreadableFiles: () => readonly string[] = () => [],
    live: LiveSources = {},
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client's gauges of these names end in _total, which Prometheus keeps for counters
    // (promtool check metrics says so); nodejs_active_handles and friends carry the same counts.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    // The routes' per-request counts are handed over when the registry is read (RouteMetrics).
    const routes = this.routes;
    this.requests = new Counter({
      name: 'wxgw_requests_total',
      help: 'Requests answered on the traffic listener, by route, method and status class.',
      labelNames: ['route', 'method', 'status_class'],
      registers,
      collect() {
        for (const r of routes.values()) r.flushRequests();
      },
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
    this.callbackReplays = new Counter({
      name: 'wxgw_callback_replays_total',
      help: 'Signed callbacks answered without reaching the upstream, by route and result: replayed (the same request delivered before, its answer from the store), deduplicated (another request with the same message id delivered before), in_flight (503 while an earlier delivery had not finished).',
      labelNames: ['route', 'result'],
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
    this.refusals = new Counter({
      name: 'wxgw_refusals_total',
      help: 'Requests the gateway refused itself, by route ((none) before or without a route) and reason of the error catalogue.',
      labelNames: ['route', 'reason'],
      registers,
    });
    this.bytesIn = new Counter({
      name: 'wxgw_request_bytes_total',
      help: 'Request body bytes received from clients, by route (as bytes_in in the access log).',
      labelNames: ['route'],
      registers,
      collect() {
        for (const r of routes.values()) r.bytesIn.flush();
      },
    });
    this.bytesOut = new Counter({
      name: 'wxgw_response_bytes_total',
      help: 'Answer body bytes sent to clients, by route (as bytes_out in the access log).',
      labelNames: ['route'],
      registers,
      collect() {
        for (const r of routes.values()) r.bytesOut.flush();
      },
    });
    new Gauge({
      name: 'wxgw_connections_open',
      help: 'TCP connections each listener holds now, those still in their TLS handshake included; by listener (https, http, admin).',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const l of live.connections?.() ?? []) this.labels(l.name).set(l.sockets.size);
      },
    });
    this.handshakes = new Counter({
      name: 'wxgw_tls_handshakes_total',
      help: 'TLS handshakes completed on the HTTPS listener, by protocol version.',
      labelNames: ['protocol'],
      registers,
    });
    this.handshakeFailures = new Counter({
      name: 'wxgw_tls_handshake_failures_total',
      help: 'TLS handshakes that failed on the HTTPS listener, by reason: timeout, protocol, no_shared_cipher, certificate_rejected, client_closed, other.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of TLS_FAILURES) this.handshakeFailures.inc({ reason }, 0);
    this.storeDuration = new Histogram({
      name: 'wxgw_store_operation_duration_seconds',
      help: 'Time the state store took to answer one operation (hit, claim, release, put, get), failures included; by store kind and operation.',
      labelNames: ['kind', 'operation'],
      buckets: STORE_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'wxgw_ready',
      help: '1 while /readyz answers 200 (the gateway takes traffic), 0 while it does not (starting, draining, a check failing).',
      registers,
      collect() {
        this.set(live.ready === undefined || live.ready() ? 1 : 0);
      },
    });
    this.policyInfo = new Gauge({
      name: 'wxgw_policy_info',
      help: 'Always 1, one series: the hash label names the policy in force (as /config on the admin listener shows it).',
      labelNames: ['hash'],
      registers,
    });
    this.lastReload = new Gauge({
      name: 'wxgw_last_reload_success_timestamp_seconds',
      help: 'Unix time the policy in force was put in force (at start, or by the last successful reload).',
      registers,
    });
    const alertCounter = (name: string, help: string): Counter<'rule' | 'channel'> =>
      new Counter({ name: `wxgw_alerts_${name}_total`, help, labelNames: ['rule', 'channel'], registers });
    const fired = new Counter({ name: 'wxgw_alerts_fired_total', help: 'Firing alert messages the alert rules produced (after their cool-down), by rule.', labelNames: ['rule'], registers });
    const sent = alertCounter('sent', 'Alert messages a channel accepted, by rule and channel.');
    const failed = alertCounter('failed', 'Alert messages given up on after every attempt failed (or a refusal not worth retrying), by rule and channel.');
    const dropped = alertCounter('dropped', "Alert messages dropped unsent: the channel's queue was full (the oldest goes) or the channel was removed, by rule and channel.");
    this.alerts = {
      fired: (rule) => fired.labels(rule).inc(),
      sent: (rule, channel) => sent.labels(rule, channel).inc(),
      failed: (rule, channel) => failed.labels(rule, channel).inc(),
      dropped: (rule, channel) => dropped.labels(rule, channel).inc(),
    };
    new Gauge({
      name: 'wxgw_build_info',
      help: 'Always 1; the labels name the running build.',
      labelNames: ['version', 'node_version'],
      registers,
    })
      .labels(VERSION, process.version)
      .set(1);
  }

  /** A TLS handshake completed on `socket`. */
  handshake(socket: { getProtocol(): string | null }): void {
    this.handshakes.labels(socket.getProtocol() ?? 'unknown').inc();
  }

  handshakeFailed(err: NodeJS.ErrnoException): void {
    this.handshakeFailures.labels(tlsFailure(err)).inc();
  }

  /** Times one store's operations; the children are bound once per operation. */
  storeTimer(kind: string): (operation: string, seconds: number) => void {
    const children = new Map<string, Observer>();
    return (operation, seconds) => {
      let child = children.get(operation);
      if (!child) {
        child = this.storeDuration.labels(kind, operation);
        children.set(operation, child);
      }
      child.observe(seconds);
    };
  }

  /** The policy just put in force: one wxgw_policy_info series, its hash, and when. */
  policyInForce(hash: string, at: Date): void {
    this.policyInfo.reset();
    this.policyInfo.labels(hash).set(1);
    this.lastReload.set(at.getTime() / 1000);
  }

  callbackReplay(route: string | undefined, result: 'replayed' | 'deduplicated' | 'in_flight'): void {
    this.callbackReplays.labels(route ?? NO_ROUTE, result).inc();
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
      r = new RouteMetrics(
        key,
        this.requests,
        this.duration.labels(key),
        this.upstreamDuration.labels(key),
        this.upstreamErrors,
        this.refusals,
        this.bytesIn.labels(key),
        this.bytesOut.labels(key),
      );
      this.routes.set(key, r);
    }
    return r;
  }
}
