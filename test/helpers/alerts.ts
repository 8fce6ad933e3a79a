// An alert engine on a manual clock, with the gateway's real metrics and a captured log, and
// the alerts sections its tests configure it with.
import { Writable } from 'node:stream';
import { Alerts, type AlertSignals } from '../../gateway/observability/alerts/engine.js';
import { createLogger } from '../../gateway/observability/logger.js';
import { Metrics } from '../../gateway/observability/metrics.js';
import type { AlertChannelConfig, AlertRuleConfig, AlertsConfig } from '../../gateway/types/policy.js';
import { ManualClock } from './manual-clock.js';

const POS = { file: 'gateway.yaml', line: 1, col: 1, path: 'alerts' };

export function channel(name: string, url: string, kind: AlertChannelConfig['kind'] = 'webhook', extra: Partial<AlertChannelConfig> = {}): AlertChannelConfig {
  return { name, kind, url: new URL(url), ...extra };
}

type RuleInput = { name: string; channels: string[]; cooldown?: number; resolved?: boolean } & (
  | { kind: 'refusals'; reason?: string; more_than: number; window: number }
  | { kind: 'store_down'; for: number }
  | { kind: 'certificate_expiring'; before_expiry: number }
  | { kind: 'reload_failed' }
);

export function rule(r: RuleInput): AlertRuleConfig {
  const base = { cooldown: 600_000, resolved: true, pos: POS, ...r };
  return (r.kind === 'refusals' ? { ...base, reason: r.reason ?? 'signature_invalid' } : base) as AlertRuleConfig;
}

export function section(channels: AlertChannelConfig[], rules: AlertRuleConfig[], delivery: Partial<AlertsConfig['delivery']> = {}): AlertsConfig {
  return {
    instance: 'gw-test-1',
    check_interval: 15_000,
    delivery: { attempts: 6, backoff: 1000, max_backoff: 300_000, timeout: 5000, queue: 100, ...delivery },
    channels: new Map(channels.map((c) => [c.name, c])),
    rules,
    pos: POS,
  };
}

export interface TestAlerts {
  alerts: Alerts;
  clock: ManualClock;
  metrics: Metrics;
  /** The counter's value for these labels (0 when never counted). */
  count(metric: 'fired' | 'sent' | 'failed' | 'dropped', labels: Record<string, string>): Promise<number>;
  logText(): string;
  signals: { storeUp: boolean; certificates: { certFile: string; notAfter: Date }[] };
}

export function startAlerts(config: AlertsConfig): TestAlerts {
  const clock = new ManualClock();
  const metrics = new Metrics(() => [], () => ({ kind: 'memory', connected: true }));
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const state = { storeUp: true, certificates: [] as { certFile: string; notAfter: Date }[] };
  const signals: AlertSignals = { storeUp: () => state.storeUp, certificates: () => state.certificates };
  // random() = 0: every backoff is its full length, so the test knows which timer is which.
  const alerts = new Alerts({ signals, logger: createLogger({ level: 'debug', destination: sink }), counters: metrics.alerts, clock, random: () => 0 }, config);
  return {
    alerts,
    clock,
    metrics,
    async count(metric, labels) {
      const m = metrics.registry.getSingleMetric(`wxgw_alerts_${metric}_total`);
      const values = (await m!.get()).values;
      return values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value ?? 0;
    },
    logText: () => chunks.join(''),
    signals: state,
  };
}
