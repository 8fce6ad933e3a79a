// The alert rules over the gateway's own signals, and what they send. Refusals and reloads are
// told as they happen (refused(), reloaded()); the store and the certificates are looked at
// every check_interval, which is also when a firing rule is tested for having cleared.
//
// Each rule (and each certificate, for certificate_expiring) is one incident that is active or
// not. Becoming active, or staying active past the cool-down, sends a firing alert unless one was
// sent within the cool-down; clearing sends a resolved alert if a firing one was sent. State
// survives a reload for every rule whose name and kind stay; the queues survive in Delivery.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { AlertRuleConfig, AlertsConfig, Diagnostic } from '../../types/policy.js';
import type { Logger } from '../logger.js';
import type { Alert } from './alert.js';
import { realClock, type AlertClock } from './clock.js';
import { Delivery, type AlertCounters } from './delivery.js';

/** Where state rules read the gateway's state, at each check. */
export interface AlertSignals {
  /** False while the store cannot answer. */
  storeUp(): boolean;
  /** The certificates of the policy in force. */
  certificates(): readonly { certFile: string; notAfter: Date }[];
}

/** A reload's outcome as alerts need it (runtime/reloader.ts's ReloadResult fits). */
export type ReloadOutcome = { ok: true } | { ok: false; why: 'invalid' | 'restart'; diagnostics: readonly Diagnostic[] };

type Rule<K extends AlertRuleConfig['kind']> = Extract<AlertRuleConfig, { kind: K }>;

interface Incident {
  active: boolean;
  /** A firing alert went out for this activation. */
  notified: boolean;
  lastSent: number | undefined;
  since: number;
  /** Events counted while active (refusals, failed reloads). */
  count: number;
}

/** The last more_than + 1 refusal times: more_than is exceeded when the oldest is within window. */
class Ring {
  private readonly times: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(size: number) {
    this.times = new Float64Array(size);
  }

  push(t: number): void {
    this.times[this.next] = t;
    this.next = (this.next + 1) % this.times.length;
    if (this.filled < this.times.length) this.filled++;
  }

  /** More than size - 1 entries since `from`. */
  exceeded(from: number): boolean {
    return this.filled === this.times.length && this.times[this.next % this.times.length]! > from;
  }
}

interface RuleState {
  rule: AlertRuleConfig;
  /** By key: '' for a rule with one incident, the certificate file for certificate_expiring. */
  incidents: Map<string, Incident>;
  ring?: Ring;
  /** store_down: when the store was first seen down in this outage. */
  downSince?: number;
}

const seconds = (ms: number): number => Math.round(ms / 1000);

function span(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export interface AlertsDeps {
  readonly signals: AlertSignals;
  readonly logger: Logger;
  readonly counters: AlertCounters;
  readonly clock?: AlertClock;
  readonly random?: () => number;
}

export class Alerts {
  private config: AlertsConfig | undefined;
  private rules = new Map<string, RuleState>();
  private readonly delivery: Delivery;
  private readonly clock: AlertClock;
  private readonly host = hostname();
  private timer: unknown;
  private closed = false;

  constructor(
    private readonly deps: AlertsDeps,
    config: AlertsConfig | undefined,
  ) {
    this.clock = deps.clock ?? realClock;
    this.delivery = new Delivery({ clock: this.clock, logger: deps.logger, counters: deps.counters, ...(deps.random && { random: deps.random }) });
    this.configure(config);
  }

  /** Puts a (re)loaded alerts section in force; undefined turns alerts off. */
  configure(config: AlertsConfig | undefined): void {
    if (this.closed) return;
    this.config = config;
    this.delivery.configure(config);
    const old = this.rules;
    this.rules = new Map();
    for (const rule of config?.rules ?? []) {
      const kept = old.get(rule.name);
      const state: RuleState = kept && kept.rule.kind === rule.kind ? { ...kept, rule } : { rule, incidents: new Map() };
      if (rule.kind === 'refusals') {
        const before = kept?.rule.kind === 'refusals' ? kept.rule : undefined;
        if (!state.ring || before?.more_than !== rule.more_than) state.ring = new Ring(rule.more_than + 1);
      }
      this.rules.set(rule.name, state);
    }
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (config) this.schedule(config.check_interval);
  }

  /** A request was refused (or admitted despite something) with this reason. */
  refused(reason: string): void {
    if (!this.config) return;
    const now = this.clock.now();
    for (const s of this.rules.values()) {
      const rule = s.rule;
      if (rule.kind !== 'refusals' || rule.reason !== reason) continue;
      s.ring!.push(now);
      const inc = this.incident(s, '');
      if (inc.active) inc.count++;
      if (inc.active || s.ring!.exceeded(now - rule.window)) this.fire(s, '', () => this.refusalAlert(rule, inc));
    }
  }

  /** A reload finished; a successful one has already been configure()d. */
  reloaded(result: ReloadOutcome): void {
    for (const s of this.rules.values()) {
      if (s.rule.kind !== 'reload_failed') continue;
      const rule = s.rule;
      if (result.ok) {
        this.clear(s, '', (inc) => ({ summary: 'a policy reload succeeded; the policy on disk is in force', details: { failed_reloads: inc.count } }));
        continue;
      }
      const inc = this.incident(s, '');
      inc.count = inc.active ? inc.count + 1 : 1;
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      // Where, not what: a message may quote a value from the policy.
      const where = errors.slice(0, 3).map((d) => `${d.file}:${d.line}${d.path ? ` ${d.path}` : ''}`);
      this.fire(s, '', () => ({
        summary:
          result.why === 'restart'
            ? 'a policy reload was refused: it changes a listener or the store, which needs a restart; the previous policy stays in force'
            : `a policy reload was rejected with ${errors.length} error(s); the previous policy stays in force`,
        details: { rule_kind: rule.kind, why: result.why, errors: errors.length, ...(where.length > 0 && { at: where.join(', ') }), failed_reloads: inc.count },
      }));
    }
  }

  /** Looks at the store and the certificates, and clears what no longer holds. Runs every check_interval. */
  check(): void {
    if (!this.config) return;
    const now = this.clock.now();
    for (const s of this.rules.values()) {
      const rule = s.rule;
      switch (rule.kind) {
        case 'refusals': {
          const inc = this.incident(s, '');
          if (!inc.active) break;
          if (s.ring!.exceeded(now - rule.window)) this.fire(s, '', () => this.refusalAlert(rule, inc));
          else this.clear(s, '', (i) => ({ summary: `${rule.reason} refusals are back to at most ${rule.more_than} within ${span(rule.window)}`, details: { reason: rule.reason, counted: i.count } }));
          break;
        }
        case 'store_down':
          this.checkStore(s, rule, now);
          break;
        case 'certificate_expiring':
          this.checkCertificates(s, rule, now);
          break;
        case 'reload_failed':
          break;
      }
    }
  }

  /** Alerts waiting or being sent. */
  pending(): number {
    return this.delivery.pending();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    await this.delivery.close();
  }

  private schedule(every: number): void {
    this.timer = this.clock.setTimeout(() => {
      if (this.closed) return;
      try {
        this.check();
      } catch (err) {
        this.deps.logger.error({ err }, 'alert check failed');
      }
      this.schedule(every);
    }, every);
  }

  private checkStore(s: RuleState, rule: Rule<'store_down'>, now: number): void {
    if (this.deps.signals.storeUp()) {
      const since = s.downSince;
      s.downSince = undefined;
      this.clear(s, '', () => ({ summary: 'the state store answers again', details: { down_seconds: seconds(now - (since ?? now)) } }));
      return;
    }
    s.downSince ??= now;
    const down = now - s.downSince;
    if (down < rule.for) return;
    this.fire(s, '', () => ({
      summary: `the state store has not answered for ${span(down)} (the rule allows ${span(rule.for)}); requests that need it are refused or admitted as store.on_unavailable says`,
      details: { rule_kind: rule.kind, down_seconds: seconds(down), for_seconds: seconds(rule.for) },
    }));
  }

  private checkCertificates(s: RuleState, rule: Rule<'certificate_expiring'>, now: number): void {
    const expiring = new Map<string, Date>();
    for (const c of this.deps.signals.certificates()) if (c.notAfter.getTime() - now <= rule.before_expiry) expiring.set(c.certFile, c.notAfter);
    for (const [file, notAfter] of expiring) {
      const left = notAfter.getTime() - now;
      this.fire(s, file, () => ({
        summary: left <= 0 ? `certificate ${file} has expired` : `certificate ${file} expires in ${Math.floor(left / 86_400_000)} day(s), within ${span(rule.before_expiry)}`,
        details: { rule_kind: rule.kind, certificate: file, expires_at: notAfter.toISOString(), days_left: Math.floor(left / 86_400_000) },
      }));
    }
    for (const file of s.incidents.keys()) {
      if (!expiring.has(file)) this.clear(s, file, () => ({ summary: `certificate ${file} was renewed or removed`, details: { certificate: file } }));
    }
  }

  private refusalAlert(rule: Rule<'refusals'>, inc: Incident): Pick<Alert, 'summary' | 'details'> {
    return {
      summary: `more than ${rule.more_than} ${rule.reason} refusals within ${span(rule.window)}`,
      details: { rule_kind: rule.kind, reason: rule.reason, more_than: rule.more_than, window_seconds: seconds(rule.window), counted: Math.max(inc.count, rule.more_than + 1) },
    };
  }

  private incident(s: RuleState, key: string): Incident {
    let inc = s.incidents.get(key);
    if (!inc) {
      inc = { active: false, notified: false, lastSent: undefined, since: 0, count: 0 };
      s.incidents.set(key, inc);
    }
    return inc;
  }

  private fire(s: RuleState, key: string, describe: () => Pick<Alert, 'summary' | 'details'>): void {
    const now = this.clock.now();
    const inc = this.incident(s, key);
    if (!inc.active) {
      inc.active = true;
      inc.notified = false;
      inc.since = now;
      if (s.rule.kind === 'refusals') inc.count = s.rule.more_than + 1;
    }
    if (inc.lastSent !== undefined && now - inc.lastSent < s.rule.cooldown) return;
    inc.lastSent = now;
    inc.notified = true;
    this.deps.counters.fired(s.rule.name);
    this.send(s.rule, 'firing', describe());
  }

  private clear(s: RuleState, key: string, describe: (inc: Incident) => Pick<Alert, 'summary' | 'details'>): void {
    const inc = s.incidents.get(key);
    if (!inc?.active) return;
    inc.active = false;
    const notified = inc.notified;
    inc.notified = false;
    if (key !== '') s.incidents.delete(key);
    if (notified && s.rule.resolved) this.send(s.rule, 'resolved', describe(inc));
  }

  private send(rule: AlertRuleConfig, state: Alert['state'], what: Pick<Alert, 'summary' | 'details'>): void {
    const alert: Alert = {
      id: randomUUID(),
      rule: rule.name,
      kind: rule.kind,
      state,
      instance: this.config!.instance,
      host: this.host,
      at: new Date(this.clock.now()).toISOString(),
      ...what,
    };
    this.deps.logger.warn({ alert: rule.name, alert_id: alert.id, state, details: alert.details }, `alert ${state}: ${alert.summary}`);
    this.delivery.enqueue(alert, rule.channels);
  }
}
