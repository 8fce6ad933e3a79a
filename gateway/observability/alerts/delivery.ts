// Sending alerts: one bounded queue per channel, worked one alert at a time, so a dead webhook
// delays only its own alerts. An attempt that fails with a 5xx, a timeout, a connection error
// or a robot's error code is retried after an exponential backoff with jitter, up to
// delivery.attempts; a full queue drops its oldest alert, logged and counted. A changed policy
// (configure) keeps every queue: pending alerts go to the channel of that name as it is now,
// those of a channel that is gone are dropped.

import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import type { AlertChannelConfig, AlertsConfig } from '../../types/policy.js';
import type { Logger } from '../logger.js';
import type { Alert } from './alert.js';
import type { AlertClock } from './clock.js';
import { judge, outgoing, type Answer } from './formats.js';

/** What delivery counts, by rule and channel (observability/metrics.ts). */
export interface AlertCounters {
  fired(rule: string): void;
  sent(rule: string, channel: string): void;
  failed(rule: string, channel: string): void;
  dropped(rule: string, channel: string): void;
}

/** Answers longer than this are not needed to judge a robot's errcode. */
const MAX_ANSWER = 64 * 1024;

interface Job {
  readonly alert: Alert;
  attempt: number;
}

class ChannelQueue {
  readonly waiting: Job[] = [];
  /** The job being attempted or waiting for its next attempt. */
  current: Job | undefined;
  timer: unknown;
}

export interface DeliveryDeps {
  readonly clock: AlertClock;
  readonly logger: Logger;
  readonly counters: AlertCounters;
  /** In [0, 1); Math.random by default. */
  readonly random?: () => number;
}

export class Delivery {
  private settings: AlertsConfig['delivery'] | undefined;
  private channels = new Map<string, AlertChannelConfig>();
  private readonly queues = new Map<string, ChannelQueue>();
  /** Verified TLS with Node's roots, or with the channel's own `ca`. */
  private readonly shared = new Agent();
  private agents = new Map<string, Agent>();
  private closed = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: DeliveryDeps) {}

  /** Applies the alerts section in force (undefined: none); pending alerts stay queued. */
  configure(config: AlertsConfig | undefined): void {
    this.settings = config?.delivery;
    this.channels = config?.channels ?? new Map();
    const old = this.agents;
    this.agents = new Map();
    for (const c of this.channels.values()) {
      if (!c.ca) continue;
      try {
        this.agents.set(c.name, new Agent({ connect: { ca: readFileSync(c.ca, 'utf8') } }));
      } catch (err) {
        // Checked at load; gone since. Node's roots still verify, so nothing is sent unverified.
        this.deps.logger.error({ channel: c.name, err }, `alert channel CA bundle ${c.ca} cannot be read; using the system roots`);
      }
    }
    // In-flight requests finish on the agent they started on.
    for (const a of old.values()) a.close().catch(() => undefined);
    for (const [name, q] of this.queues) {
      if (!this.channels.has(name)) {
        for (const job of q.waiting.splice(0)) this.drop(job, name, 'its channel was removed from the policy');
      } else {
        while (q.waiting.length > this.settings!.queue) this.drop(q.waiting.shift()!, name, 'the queue is full');
      }
    }
  }

  enqueue(alert: Alert, channels: readonly string[]): void {
    if (this.closed || !this.settings) return;
    for (const name of channels) {
      if (!this.channels.has(name)) continue;
      let q = this.queues.get(name);
      if (!q) {
        q = new ChannelQueue();
        this.queues.set(name, q);
      }
      q.waiting.push({ alert, attempt: 0 });
      while (q.waiting.length > this.settings.queue) this.drop(q.waiting.shift()!, name, 'the queue is full');
      this.pump(name, q);
    }
  }

  /** Alerts not yet delivered or given up, on every channel. */
  pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.waiting.length + (q.current ? 1 : 0);
    return n;
  }

  /** Stops retrying; attempts under way finish first. Undelivered alerts are lost (and logged). */
  async close(): Promise<void> {
    this.closed = true;
    for (const [name, q] of this.queues) {
      if (q.timer !== undefined) this.deps.clock.clearTimeout(q.timer);
      const lost = q.waiting.length + (q.current ? 1 : 0);
      if (lost > 0) this.deps.logger.warn({ channel: name, alerts: lost }, 'alerts not delivered before shutdown');
    }
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([this.shared.close(), ...[...this.agents.values()].map((a) => a.close())]);
  }

  private drop(job: Job, channel: string, why: string): void {
    this.deps.counters.dropped(job.alert.rule, channel);
    this.deps.logger.warn({ alert: job.alert.rule, alert_id: job.alert.id, channel }, `alert dropped: ${why}`);
  }

  private pump(name: string, q: ChannelQueue): void {
    if (this.closed || q.current) return;
    const job = q.waiting.shift();
    if (!job) return;
    q.current = job;
    this.attempt(name, q, job);
  }

  private attempt(name: string, q: ChannelQueue, job: Job): void {
    q.timer = undefined;
    const channel = this.channels.get(name);
    const settings = this.settings;
    if (!channel || !settings || this.closed) {
      if (!this.closed) this.drop(job, name, 'its channel was removed from the policy');
      q.current = undefined;
      this.pump(name, q);
      return;
    }
    job.attempt++;
    const run = this.send(channel, job.alert, settings.timeout).then((answer) => this.settle(name, q, job, answer, settings));
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  private settle(name: string, q: ChannelQueue, job: Job, answer: Answer, settings: AlertsConfig['delivery']): void {
    const { alert } = job;
    if (answer.ok) {
      this.deps.counters.sent(alert.rule, name);
      this.deps.logger.info({ alert: alert.rule, alert_id: alert.id, state: alert.state, channel: name, attempt: job.attempt }, 'alert delivered');
    } else if (answer.retry && job.attempt < settings.attempts && !this.closed) {
      const wait = this.backoff(job.attempt, settings);
      this.deps.logger.warn({ alert: alert.rule, alert_id: alert.id, channel: name, attempt: job.attempt, retry_in_ms: wait }, `alert delivery failed: ${answer.why}; retrying`);
      q.timer = this.deps.clock.setTimeout(() => this.attempt(name, q, job), wait);
      return;
    } else {
      this.deps.counters.failed(alert.rule, name);
      this.deps.logger.error({ alert: alert.rule, alert_id: alert.id, channel: name, attempt: job.attempt }, `alert delivery failed: ${answer.why}; giving up`);
    }
    q.current = undefined;
    this.pump(name, q);
  }

  /** backoff * 2^(n-1), at most max_backoff, less up to half of it at random. */
  private backoff(attempt: number, s: AlertsConfig['delivery']): number {
    const full = Math.min(s.max_backoff, s.backoff * 2 ** (attempt - 1));
    return Math.round(full * (1 - (this.deps.random ?? Math.random)() / 2));
  }

  private async send(channel: AlertChannelConfig, alert: Alert, timeout: number): Promise<Answer> {
    const { clock } = this.deps;
    const out = outgoing(channel, alert, clock.now());
    const abort = new AbortController();
    const timer = clock.setTimeout(() => abort.abort(), timeout);
    const dispatcher: Dispatcher = this.agents.get(channel.name) ?? this.shared;
    try {
      const res = await request(out.url, { method: 'POST', headers: out.headers, body: out.body, dispatcher, signal: abort.signal });
      let text = '';
      for await (const chunk of res.body) {
        if (text.length < MAX_ANSWER) text += (chunk as Buffer).toString();
      }
      return judge(channel.kind, res.statusCode, text);
    } catch (err) {
      if (abort.signal.aborted) return { ok: false, retry: true, why: `no answer within ${timeout}ms` };
      const code = (err as { code?: unknown }).code;
      return { ok: false, retry: true, why: typeof code === 'string' ? code : err instanceof Error ? err.message : String(err) };
    } finally {
      clock.clearTimeout(timer);
    }
  }
}
