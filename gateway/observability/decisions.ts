// How often the gateway decided a request itself: each refusal by its reason, each redirect to
// HTTPS. The counts live in the gateway's Prometheus counter (wxgw_decisions_total), the one
// source of truth; this binds one child per reason so that counting costs a map lookup.
import type { Counter } from 'prom-client';
import { REASONS, type Reason } from '../errors.js';

/**
 * Besides refusals and redirects: requests admitted unlimited while the store was down
 * (`on_unavailable: allow`), answers sent unmasked because masking failed (`on_mask_error: pass`),
 * and requests forwarded without header names a backend would fold (`server.headers.underscores: drop`).
 */
const ADMITTED = ['redirect', 'store_unavailable_allowed', 'mask_failed_passed', 'header_dropped'] as const;

export type Decision = Reason | (typeof ADMITTED)[number];

const ADMITTED_SET: ReadonlySet<Decision> = new Set(ADMITTED);

/** Not a refusal: a response cut after one of these was cut by its client, not by the gateway. */
export function isAdmission(decision: Decision): boolean {
  return ADMITTED_SET.has(decision);
}

export class Decisions {
  private readonly children = new Map<Decision, { inc(): void }>();
  /** Told of each decision as it is counted: the alert rules over refusals (observability/alerts/). */
  listener: ((decision: Decision) => void) | undefined;

  constructor(private readonly counter: Counter<'reason'>) {
    for (const d of [...(Object.keys(REASONS) as Reason[]), ...ADMITTED]) {
      // Exported at 0 from the start, so that rate() sees the first one.
      counter.inc({ reason: d }, 0);
      this.children.set(d, counter.labels(d));
    }
  }

  count(decision: Decision): void {
    this.children.get(decision)!.inc();
    this.listener?.(decision);
  }

  /** Every decision taken at least once, with its count. */
  async snapshot(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const v of (await this.counter.get()).values) if (v.value > 0) out[String(v.labels.reason)] = v.value;
    return out;
  }
}
