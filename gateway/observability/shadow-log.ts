// What rules in report mode would have done, told three ways: the access line's `shadow` list
// (every request, by the caller), wxgw_shadow_decisions_total{route,rule,reason}, and an info log
// line. The log line is rate-limited: at most one per route and decision (or per route and set of
// mask findings) a minute, carrying how many were not logged since the last; the first is always
// logged, so a rule that starts firing shows at once. Keys are routes, rules and reasons from the
// policy, and mask findings (the answer's spellings of rule names, detectors), the limiter's map
// held to KEYS_HELD entries whatever a backend sends.
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

const LOG_EVERY_MS = 60_000;
/** Mask findings name the answer's own spellings of rule names: a backend varying them cannot grow the map past this. */
const KEYS_HELD = 1000;

/** What masking in report mode found (masking/dry-run.ts), as far as the log is concerned. */
export interface MaskReport {
  readonly keys: readonly string[];
  readonly detectors: readonly string[];
  readonly headers: readonly string[];
  readonly failed?: string;
  readonly unexamined?: string;
}

export interface ShadowRequest {
  readonly id: string;
  readonly route: string | undefined;
  /** `rule:reason` from the guard chain. */
  readonly shadow: readonly string[] | undefined;
  readonly maskReport: MaskReport | undefined;
}

export class ShadowLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts and logs the request's shadow decisions; returns them for the access line (undefined: none). */
  record(req: ShadowRequest): readonly string[] | undefined {
    const mask = req.maskReport;
    const maskDecision = mask === undefined ? undefined : mask.failed !== undefined ? 'mask:mask_failed' : wouldMask(mask) ? 'mask:masked' : undefined;
    const decisions = maskDecision === undefined ? req.shadow : [...(req.shadow ?? []), maskDecision];
    const route = req.route ?? '(none)';
    for (const d of decisions ?? []) {
      const colon = d.indexOf(':');
      const rule = d.slice(0, colon);
      const reason = d.slice(colon + 1);
      this.metrics.shadowDecision(route, rule, reason);
      if (rule === 'mask') continue;
      const suppressed = this.due(`${route} ${d}`);
      if (suppressed !== undefined) {
        this.logger.info({ request_id: req.id, route, rule, reason, suppressed }, 'report mode: a rule would have refused this request; it was let through');
      }
    }
    if (mask && (maskDecision !== undefined || mask.unexamined !== undefined)) this.mask(req.id, route, mask);
    return decisions;
  }

  private mask(id: string, route: string, m: MaskReport): void {
    const suppressed = this.due(`${route} mask ${m.keys.join(',')} ${m.detectors.join(',')} ${m.headers.join(',')} ${m.failed ?? ''} ${m.unexamined ?? ''}`);
    if (suppressed === undefined) return;
    const fields = { request_id: id, route, rule: 'mask', keys: m.keys, detectors: m.detectors, headers: m.headers, suppressed };
    if (m.failed !== undefined) this.logger.info({ ...fields, why: m.failed }, 'report mode: the answer could not have been masked; it was sent as the upstream gave it');
    else if (m.unexamined !== undefined) this.logger.info({ ...fields, why: m.unexamined }, 'report mode: the answer was not examined for masking');
    else this.logger.info(fields, 'report mode: the answer would have been masked; it was sent unmasked');
  }

  /** The count not logged since the last line for `key`, when a line is due now; undefined when not. */
  private due(key: string): number | undefined {
    const t = this.now();
    const entry = this.seen.get(key);
    if (entry && t - entry.at < LOG_EVERY_MS) {
      entry.suppressed++;
      return undefined;
    }
    const suppressed = entry?.suppressed ?? 0;
    if (!entry && this.seen.size >= KEYS_HELD) this.seen.clear();
    this.seen.set(key, { at: t, suppressed: 0 });
    return suppressed;
  }
}

function wouldMask(m: MaskReport): boolean {
  return m.keys.length > 0 || m.detectors.length > 0 || m.headers.length > 0;
}
