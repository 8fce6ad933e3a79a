// A circuit per WeChat API: after WeChat says it is busy (-1), over quota (45009), called too often
// (45011), or does not answer in time, calls stop for a while instead of hammering it from one NAT
// address (which is how accounts get their API blocked). closed -> open (backoff) -> half-open (one
// probe call) -> closed on its success, or open again with twice the backoff on its failure.
// Per instance: each instance learns it from its own calls, and at most one probe each goes out.
import type { CircuitState } from './metrics.js';

export interface CircuitTiming {
  /** First open period, ms. */
  readonly baseMs: number;
  /** Longest open period, ms. */
  readonly maxMs: number;
  /** Consecutive failures (of the kinds that do not open at once) that open the circuit. */
  readonly threshold: number;
}

export const CIRCUIT_TIMING: CircuitTiming = { baseMs: 5000, maxMs: 5 * 60_000, threshold: 3 };

export type Admission = { ok: true; probe: boolean } | { ok: false; retryAfterMs: number };

export class Circuit {
  private state: CircuitState = 'closed';
  private failures = 0;
  private backoffMs: number;
  private openUntil = 0;
  private probing = false;

  constructor(
    private readonly timing: CircuitTiming,
    private readonly changed: (to: CircuitState, retryAfterMs: number) => void,
  ) {
    this.backoffMs = timing.baseMs;
  }

  get current(): CircuitState {
    return this.state;
  }

  admit(now: number): Admission {
    if (this.state === 'closed') return { ok: true, probe: false };
    if (this.state === 'open') {
      if (now < this.openUntil) return { ok: false, retryAfterMs: this.openUntil - now };
      this.move('half_open', 0);
    }
    // Half-open: the one probe is out; everyone else waits for its answer.
    if (this.probing) return { ok: false, retryAfterMs: this.timing.baseMs };
    this.probing = true;
    return { ok: true, probe: true };
  }

  /** A call that WeChat answered without a circuit errcode. */
  success(probe: boolean): void {
    if (probe) this.probing = false;
    this.failures = 0;
    if (this.state !== 'closed') {
      this.backoffMs = this.timing.baseMs;
      this.move('closed', 0);
    }
  }

  /** A call that earned a circuit errcode or timed out; `atOnce` for 45009, which a repeat never fixes. */
  failure(now: number, probe: boolean, atOnce: boolean): void {
    if (probe) this.probing = false;
    if (this.state === 'half_open') {
      this.backoffMs = Math.min(this.backoffMs * 2, this.timing.maxMs);
      this.open(now);
      return;
    }
    if (this.state === 'open') return;
    this.failures++;
    if (atOnce || this.failures >= this.timing.threshold) this.open(now);
  }

  /** A probe that ended without telling (the backend went away, wxgw refused it): another may go. */
  abandoned(probe: boolean): void {
    if (probe) this.probing = false;
  }

  private open(now: number): void {
    this.failures = 0;
    this.openUntil = now + this.backoffMs;
    this.move('open', this.backoffMs);
  }

  private move(to: CircuitState, retryAfterMs: number): void {
    this.state = to;
    this.changed(to, retryAfterMs);
  }
}
