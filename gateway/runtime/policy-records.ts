// Which policy is in force, for people: its redacted view and hash for /config, the
// wxgw_policy_info series, and what each reload changed. Computed once per snapshot put in force,
// never per request.
import type { Metrics } from '../observability/metrics.js';
import { policyChanges, policyView, type PolicyChanges } from '../policy/policy-view.js';
import type { Snapshot } from '../snapshot.js';

export interface PolicyRecord {
  readonly hash: string;
  /** When the policy was put in force. */
  readonly loadedAt: Date;
  /** The resolved policy with every secret redacted. */
  readonly view: Record<string, unknown>;
}

export class PolicyRecords {
  private readonly records = new WeakMap<Snapshot, PolicyRecord>();

  constructor(
    private readonly metrics: Pick<Metrics, 'policyInForce'>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** A snapshot was put in force (at start or by a reload). */
  inForce(snapshot: Snapshot): PolicyRecord {
    const { view, hash } = policyView(snapshot.policy);
    const record: PolicyRecord = { hash, loadedAt: this.now(), view };
    this.records.set(snapshot, record);
    this.metrics.policyInForce(hash, record.loadedAt);
    return record;
  }

  /** A reload swapped `previous` for `next`: what its log line says changed. */
  swapped(previous: Snapshot, next: Snapshot): { hash: string; changed: PolicyChanges } {
    const record = this.inForce(next);
    return { hash: record.hash, changed: policyChanges(previous.policy, next.policy) };
  }

  /** The record of the snapshot in force (recorded on first use should it have been missed). */
  current(snapshot: Snapshot): PolicyRecord {
    return this.records.get(snapshot) ?? this.inForce(snapshot);
  }
}
