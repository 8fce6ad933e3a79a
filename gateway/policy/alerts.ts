// The `alerts` section: checks across its values (rules name channels that exist, each rule only
// the keys its kind reads, a reason the gateway refuses with, a readable CA bundle) and the
// build from validated data to AlertsConfig. Its defaults join build.ts's DEFAULTS.

import { hostname } from 'node:os';
import { REASONS } from '../errors.js';
import type { AlertChannelConfig, AlertRuleConfig, AlertsConfig, SourcePos } from '../types/policy.js';
import { resolveFrom, unreadable } from './files.js';
import { isRecord, type KeyPath } from './key-path.js';
import { show, type Reporter } from './report.js';
import { closest } from './suggest.js';
import { parseDuration, type Parsed } from './units.js';
import { checkDuration } from './value-checks.js';

/** Spread into build.ts's DEFAULTS; config/policy.schema.json documents the same ones. */
export const ALERT_DEFAULTS = {
  alert_check_interval: '15s',
  alert_attempts: 6,
  alert_backoff: '1s',
  alert_max_backoff: '5m',
  alert_timeout: '5s',
  alert_queue: 100,
  alert_cooldown: '15m',
  alert_resolved: true,
  alert_reason: 'signature_invalid',
  alert_more_than: 10,
  alert_window: '5m',
  alert_store_for: '1m',
  alert_before_expiry: '14d',
} as const;

type Kind = AlertRuleConfig['kind'];

/** The keys only one kind of rule reads. */
const KIND_KEYS: Record<string, Kind> = {
  reason: 'refusals',
  more_than: 'refusals',
  window: 'refusals',
  for: 'store_down',
  before_expiry: 'certificate_expiring',
};

/** Only these robots sign their requests. */
const SIGNED: ReadonlySet<string> = new Set(['dingtalk', 'feishu']);

export interface RawAlerts {
  instance?: string;
  check_interval?: string;
  delivery?: { attempts?: number; backoff?: string; max_backoff?: string; timeout?: string; queue?: number };
  channels: Record<string, { kind: AlertChannelConfig['kind']; url: string; secret?: string; ca?: string }>;
  rules: {
    name: string;
    kind: Kind;
    channels: string[];
    cooldown?: string;
    resolved?: boolean;
    reason?: string;
    more_than?: number;
    window?: string;
    for?: string;
    before_expiry?: string;
  }[];
}

export async function checkAlerts(data: Record<string, unknown>, baseDir: string, report: Reporter): Promise<void> {
  const alerts = data.alerts;
  if (!isRecord(alerts)) return;
  const at: KeyPath = ['alerts'];
  checkDuration(report, alerts.check_interval, [...at, 'check_interval'], true);
  if (isRecord(alerts.delivery)) {
    const d = alerts.delivery;
    const backoff = checkDuration(report, d.backoff, [...at, 'delivery', 'backoff'], true);
    const max = checkDuration(report, d.max_backoff, [...at, 'delivery', 'max_backoff'], true);
    checkDuration(report, d.timeout, [...at, 'delivery', 'timeout'], true);
    const b = backoff ?? sure(parseDuration(ALERT_DEFAULTS.alert_backoff));
    const m = max ?? sure(parseDuration(ALERT_DEFAULTS.alert_max_backoff));
    if (b > m) report.error([...at, 'delivery', max !== undefined ? 'max_backoff' : 'backoff'], `backoff (${show(d.backoff ?? ALERT_DEFAULTS.alert_backoff)}) is longer than max_backoff (${show(d.max_backoff ?? ALERT_DEFAULTS.alert_max_backoff)})`);
  }
  const channels = isRecord(alerts.channels) ? alerts.channels : {};
  const files: Promise<void>[] = [];
  for (const [name, channel] of Object.entries(channels)) {
    if (!isRecord(channel)) continue;
    const cat = [...at, 'channels', name];
    if (typeof channel.url === 'string' && URL.canParse(channel.url) === false) report.error([...cat, 'url'], 'is not a URL');
    if (channel.secret !== undefined && typeof channel.kind === 'string' && !SIGNED.has(channel.kind)) {
      report.error([...cat, 'secret'], `a ${channel.kind} channel does not sign its requests; secret applies to kind dingtalk and feishu`, { anchor: 'key' });
    }
    if (typeof channel.ca === 'string' && channel.ca !== '') {
      const file = resolveFrom(baseDir, channel.ca);
      files.push(
        unreadable(file).then((why) => {
          if (why) report.error([...cat, 'ca'], `cannot read CA bundle ${file}: ${why}`);
        }),
      );
    }
  }
  if (Array.isArray(alerts.rules)) {
    const seen = new Set<string>();
    alerts.rules.forEach((rule: unknown, i) => {
      if (!isRecord(rule)) return;
      const rat = [...at, 'rules', i];
      if (typeof rule.name === 'string') {
        if (seen.has(rule.name)) report.error([...rat, 'name'], `${show(rule.name)} names another rule already; rule names must be unique (they label alerts and metrics)`);
        seen.add(rule.name);
      }
      if (Array.isArray(rule.channels)) {
        rule.channels.forEach((c: unknown, j) => {
          if (typeof c !== 'string' || c in channels) return;
          const near = closest(c, Object.keys(channels));
          report.error([...rat, 'channels', j], `${show(c)} is not a channel under alerts.channels${near ? `; did you mean ${show(near)}?` : ''}`);
        });
      }
      for (const key of Object.keys(rule)) {
        const kind = KIND_KEYS[key];
        if (kind && typeof rule.kind === 'string' && rule.kind !== kind) report.error([...rat, key], `applies only to kind ${kind}, not ${rule.kind}`, { anchor: 'key' });
      }
      if (typeof rule.reason === 'string' && !(rule.reason in REASONS)) {
        const near = closest(rule.reason, Object.keys(REASONS));
        report.error([...rat, 'reason'], `${show(rule.reason)} is not a reason the gateway refuses with${near ? `; did you mean ${show(near)}?` : ''}`);
      }
      for (const key of ['cooldown', 'window', 'for', 'before_expiry']) checkDuration(report, rule[key], [...rat, key], false);
    });
  }
  await Promise.all(files);
}

function sure<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`wxgw: policy value passed validation but does not parse: ${parsed.why}`);
  return parsed.value;
}

const ms = (value: string): number => sure(parseDuration(value));

function ruleConfig(r: RawAlerts['rules'][number], pos: SourcePos): AlertRuleConfig {
  const common = {
    name: r.name,
    channels: [...new Set(r.channels)],
    cooldown: ms(r.cooldown ?? ALERT_DEFAULTS.alert_cooldown),
    resolved: r.resolved ?? ALERT_DEFAULTS.alert_resolved,
    pos,
  };
  switch (r.kind) {
    case 'refusals':
      return {
        ...common,
        kind: r.kind,
        reason: r.reason ?? ALERT_DEFAULTS.alert_reason,
        more_than: r.more_than ?? ALERT_DEFAULTS.alert_more_than,
        window: ms(r.window ?? ALERT_DEFAULTS.alert_window),
      };
    case 'store_down':
      return { ...common, kind: r.kind, for: ms(r.for ?? ALERT_DEFAULTS.alert_store_for) };
    case 'certificate_expiring':
      return { ...common, kind: r.kind, before_expiry: ms(r.before_expiry ?? ALERT_DEFAULTS.alert_before_expiry) };
    case 'reload_failed':
      return { ...common, kind: r.kind };
  }
}

export function alertsConfig(raw: RawAlerts, baseDir: string, pos: (at: KeyPath, anchor?: 'key' | 'value') => SourcePos): AlertsConfig {
  const d = raw.delivery ?? {};
  return {
    instance: raw.instance ?? hostname(),
    check_interval: ms(raw.check_interval ?? ALERT_DEFAULTS.alert_check_interval),
    delivery: {
      attempts: d.attempts ?? ALERT_DEFAULTS.alert_attempts,
      backoff: ms(d.backoff ?? ALERT_DEFAULTS.alert_backoff),
      max_backoff: ms(d.max_backoff ?? ALERT_DEFAULTS.alert_max_backoff),
      timeout: ms(d.timeout ?? ALERT_DEFAULTS.alert_timeout),
      queue: d.queue ?? ALERT_DEFAULTS.alert_queue,
    },
    channels: new Map(
      Object.entries(raw.channels).map(([name, c]) => [
        name,
        {
          name,
          kind: c.kind,
          url: new URL(c.url),
          ...(c.secret !== undefined && { secret: c.secret }),
          ...(c.ca !== undefined && { ca: resolveFrom(baseDir, c.ca) }),
        },
      ]),
    ),
    rules: raw.rules.map((r, i) => ruleConfig(r, pos(['alerts', 'rules', i]))),
    pos: pos(['alerts'], 'key'),
  };
}
