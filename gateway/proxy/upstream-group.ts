// One upstream's targets as the forwarder sees them: which are up, which one a request gets, and
// how many requests each may carry at once. A request takes a slot on a target that is up and
// has a free connection, or waits for one at most `queue_timeout` (then 503 upstream_busy): a
// group of slow clients can hold an upstream's connections, never the requests behind them.
//
// Health, per target:
//   passive  `eject.failures` connection failures in a row (refused, unreachable, connect timeout,
//            TLS refused) eject it for `eject.cooldown`; every ejection in a row doubles that, up
//            to `eject.max_cooldown`. Once the cool-down is over it takes requests again, and its
//            first connection decides: success ends the series, a failure ejects it again at once.
//   active   with `health`, a GET to its path every `interval`; `unhealthy` failures in a row take
//            it out, `healthy` passes in a row bring it back. 2xx and 3xx pass.
// A target is up when neither holds it out. With none up, requests get 503 upstream_down.
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Pool, buildConnector } from 'undici';
import { GatewayError } from '../errors.js';
import type { UpstreamTarget } from '../snapshot.js';

/** What a group tells the outside (metrics, logs); every field optional to leave out. */
export interface GroupEvents {
  ejected?(upstream: string, target: string, cooldownMs: number, err: Error): void;
  /** An active check changed its verdict; `why` for a failed one. */
  checked?(upstream: string, target: string, up: boolean, why?: string): void;
  /** The first connection after an ejection succeeded. */
  recovered?(upstream: string, target: string): void;
  dispatched?(upstream: string, target: string): void;
}

/** OpenSSL's and Node's codes for a certificate refused either way, and the gateway's pin check. */
export const TLS_FAILURE = /^ERR_SSL_|^ERR_TLS_|CERT|^UNABLE_TO_|^ERR_WXGW_UPSTREAM_PIN_MISMATCH$/;

/** Errors that came from opening a connection: nothing of the request reached the upstream. */
const connectErrors = new WeakSet<object>();

/** Whether `err` (or one of its causes) is a failure to connect, so the request was never sent. */
export function isConnectFailure(err: unknown): boolean {
  for (let e = err as { cause?: unknown } | undefined; e && typeof e === 'object'; e = e.cause as typeof e) {
    if (connectErrors.has(e)) return true;
  }
  return false;
}

export class Target {
  readonly pool: Pool;
  /**
   * The name a request states for TLS: the policy's servername, else the target's host. Passed
   * with every request so that a preserved client Host never becomes the SNI or the name the
   * upstream's certificate is checked against.
   */
  readonly servername: string;
  /** Requests holding a slot on this target. */
  active = 0;
  /** Connection failures in a row. */
  failures = 0;
  /** Ejections in a row; each doubles the cool-down. Reset by a successful connection. */
  ejections = 0;
  ejectedUntil = 0;
  /** The active checks' verdict; up until they say otherwise. */
  checkedUp = true;
  private passes = 0;
  private fails = 0;
  timer: NodeJS.Timeout | undefined;
  /**
   * TLS alerts the upstream sent after the handshake, by local port, kept until the socket has
   * closed. A TLS 1.3 server refuses a missing client certificate only then, and undici reports
   * the connection's end ("other side closed") instead of the alert that caused it.
   */
  private readonly alerts = new Map<number, Error>();

  constructor(
    readonly origin: string,
    group: UpstreamGroup,
    upstream: UpstreamTarget,
  ) {
    const { config, tls } = upstream;
    const host = new URL(origin).hostname;
    this.servername = tls?.options.servername ?? host;
    // An address gets no SNI; its certificate is checked for the address.
    const sni = tls?.options.servername ?? (isIP(host.replace(/^\[|\]$/g, '')) ? undefined : host);
    const base = buildConnector({ timeout: config.connect_timeout, ...tls?.options });
    this.pool = new Pool(origin, {
      // One beyond the requests' slots, so a health check never waits behind traffic.
      connections: config.connections + (config.health ? 1 : 0),
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: (opts, done) =>
        base({ ...opts, servername: sni }, (...args: [null, Socket | TLSSocket] | [Error, null]) => {
          if (args[0]) {
            connectErrors.add(args[0]);
            group.connectFailed(this, args[0]);
          } else {
            this.watchAlerts(args[1]);
            group.connected(this);
          }
          done(...args);
        }),
    });
  }

  private watchAlerts(socket: Socket | TLSSocket): void {
    if (!('encrypted' in socket)) return;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const port = socket.localPort;
      if (port === undefined || !err.code || !TLS_FAILURE.test(err.code)) return;
      this.alerts.set(port, err);
      // After undici's own close handling, which fails the request.
      socket.once('close', () => setImmediate(() => this.alerts.delete(port)));
    });
  }

  /** The TLS alert behind a connection undici saw end, when there was one; else `err` itself. */
  explain(err: Error): Error {
    const socket = (err as { code?: string; socket?: { localPort?: number } }).socket;
    if ((err as { code?: string }).code !== 'UND_ERR_SOCKET' || socket?.localPort === undefined) return err;
    return this.alerts.get(socket.localPort) ?? err;
  }

  up(now: number): boolean {
    return this.checkedUp && now >= this.ejectedUntil;
  }

  /** Counts one active check; returns the new verdict when it changed. */
  check(passed: boolean, healthy: number, unhealthy: number): boolean | undefined {
    if (passed) {
      this.fails = 0;
      if (!this.checkedUp && ++this.passes >= healthy) return (this.checkedUp = true);
    } else {
      this.passes = 0;
      if (this.checkedUp && ++this.fails >= unhealthy) return (this.checkedUp = false);
    }
    return undefined;
  }
}

interface Waiter {
  exclude: Target | undefined;
  gone: () => boolean;
  granted: (got: Target | GatewayError) => void;
  timer: NodeJS.Timeout;
}

export class UpstreamGroup {
  readonly targets: readonly Target[];
  private next = 0;
  private readonly queue: Waiter[] = [];
  private closed = false;

  constructor(
    readonly upstream: UpstreamTarget,
    private readonly events: GroupEvents = {},
    private readonly now: () => number = Date.now,
  ) {
    this.targets = upstream.config.targets.map((url) => new Target(url.origin, this, upstream));
  }

  private get name(): string {
    return this.upstream.name;
  }

  /**
   * Gives `granted` a target with a free slot (release() it after), or upstream_down when none
   * is up, or upstream_busy after queue_timeout. `exclude`: the target a retry must avoid; with
   * no other up, the retry gets upstream_down. `gone`: the client left, the slot is not wanted
   * (client_closed).
   */
  acquire(exclude: Target | undefined, gone: () => boolean, granted: (got: Target | GatewayError) => void): void {
    const got = this.pick(exclude);
    if (got !== 'busy') {
      granted(got);
      return;
    }
    const waiter: Waiter = {
      exclude,
      gone,
      granted,
      timer: setTimeout(() => {
        this.queue.splice(this.queue.indexOf(waiter), 1);
        granted(new GatewayError('upstream_busy'));
      }, this.upstream.config.queue_timeout),
    };
    this.queue.push(waiter);
  }

  release(target: Target): void {
    target.active--;
    this.serveQueue();
  }

  private serveQueue(): void {
    for (let i = 0; i < this.queue.length; ) {
      const waiter = this.queue[i]!;
      if (waiter.gone()) {
        this.queue.splice(i, 1);
        clearTimeout(waiter.timer);
        waiter.granted(new GatewayError('client_closed'));
        continue;
      }
      const got = this.pick(waiter.exclude);
      if (got === 'busy') {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      clearTimeout(waiter.timer);
      waiter.granted(got);
    }
  }

  /** A target that is up with a free slot (taken), or why there is none. */
  private pick(exclude: Target | undefined): Target | GatewayError | 'busy' {
    const now = this.now();
    const { balance, connections } = this.upstream.config;
    const n = this.targets.length;
    let best: Target | undefined;
    let bestAt = 0;
    let up = 0;
    for (let i = 0; i < n; i++) {
      const at = (this.next + i) % n;
      const t = this.targets[at]!;
      if (t === exclude || !t.up(now)) continue;
      up++;
      if (t.active >= connections) continue;
      // In turn for round robin; least busy takes the first of the fewest, counted from the turn.
      if (!best || t.active < best.active) {
        best = t;
        bestAt = at;
        if (balance === 'round_robin') break;
      }
    }
    if (!best) return up > 0 ? 'busy' : new GatewayError('upstream_down');
    this.next = (bestAt + 1) % n;
    best.active++;
    this.events.dispatched?.(this.name, best.origin);
    return best;
  }

  connectFailed(target: Target, err: Error): void {
    // Attempts begun before the ejection say nothing new: they must not double its cool-down.
    if (this.closed || this.now() < target.ejectedUntil) return;
    // With nowhere else to send requests, an ejection would only turn a backend that is back in a
    // second into a cool-down of 503s: a lone target is never ejected, as nginx does with one server.
    if (this.targets.length === 1) return;
    target.failures++;
    // A target back from an ejection gets one chance.
    if (target.failures < this.upstream.config.eject.failures && target.ejections === 0) return;
    const { cooldown, max_cooldown } = this.upstream.config.eject;
    const ms = Math.min(cooldown * 2 ** target.ejections, max_cooldown);
    target.ejections++;
    target.failures = 0;
    target.ejectedUntil = this.now() + ms;
    this.events.ejected?.(this.name, target.origin, ms, err);
    this.failWaitersIfDown();
  }

  connected(target: Target): void {
    target.failures = 0;
    if (target.ejections === 0) return;
    target.ejections = 0;
    this.events.recovered?.(this.name, target.origin);
  }

  /** Waiters behind targets that are all down now would only time out: they get upstream_down. */
  private failWaitersIfDown(): void {
    const now = this.now();
    if (this.targets.some((t) => t.up(now))) return;
    for (const waiter of this.queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.granted(new GatewayError('upstream_down'));
    }
  }

  /** Starts the active checks, each target on its own timer. */
  startChecks(): void {
    const health = this.upstream.config.health;
    if (!health || this.closed) return;
    for (const target of this.targets) {
      if (target.timer) continue;
      target.timer = setInterval(() => void this.checkOnce(target), health.interval);
      target.timer.unref();
    }
  }

  private async checkOnce(target: Target): Promise<void> {
    const health = this.upstream.config.health!;
    let why: string | undefined;
    try {
      const res = await target.pool.request({
        method: 'GET',
        path: this.upstream.basePath + health.path,
        headers: { 'user-agent': 'wxgw-health-check' },
        signal: AbortSignal.timeout(health.timeout),
      });
      await res.body.dump();
      if (res.statusCode >= 400) why = `answered ${res.statusCode}`;
    } catch (err) {
      why = err instanceof Error ? err.message : String(err);
    }
    if (this.closed) return;
    const changed = target.check(why === undefined, health.healthy, health.unhealthy);
    if (changed === undefined) return;
    this.events.checked?.(this.name, target.origin, changed, why);
    if (changed) this.serveQueue();
    else this.failWaitersIfDown();
  }

  /** Stops the checks; connections close once their requests are done. */
  stopChecks(): void {
    for (const target of this.targets) {
      clearInterval(target.timer);
      target.timer = undefined;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopChecks();
    for (const waiter of this.queue.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.granted(new GatewayError('upstream_unavailable', 'the gateway is shutting down'));
    }
    await Promise.all(this.targets.map((t) => t.pool.close()));
  }
}
