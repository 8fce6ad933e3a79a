// How often the gateway decided a request itself: each refusal by its reason, each redirect to
// HTTPS. One registry per running gateway (not a module global), so several gateways in one
// process, as in the tests, keep their own counts; the future /metrics endpoint reads snapshot().
import type { Reason } from '../errors.js';

export type Decision = Reason | 'redirect';

export class Decisions {
  // A Map increment per decision: cheap enough for the hot path.
  private readonly counts = new Map<Decision, number>();

  count(decision: Decision): void {
    this.counts.set(decision, (this.counts.get(decision) ?? 0) + 1);
  }

  /** Every decision taken at least once, with its count. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
