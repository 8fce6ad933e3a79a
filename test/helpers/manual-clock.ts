// A clock that moves only when the test says so: timers fire in due order as advance() passes
// them, so windows, cool-downs, backoffs and timeouts are driven without sleeping.
import type { AlertClock } from '../../gateway/observability/alerts/clock.js';

interface Timer {
  due: number;
  ms: number;
  fn: () => void;
}

export class ManualClock implements AlertClock {
  private readonly timers = new Map<number, Timer>();
  private seq = 0;
  /** Called whenever a timer is set, for waitUntil's `wake`. */
  readonly wake = new Set<() => void>();

  constructor(private t = Date.parse('2026-03-01T08:00:00Z')) {}

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { due: this.t + ms, ms, fn });
    for (const w of this.wake) w();
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** The delays of the timers still to fire, as they were set. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.ms);
  }

  /** Moves time on by `ms`, firing every timer that falls due on the way, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, Timer] | undefined;
      for (const e of this.timers) if (e[1].due <= end && (!next || e[1].due < next[1].due)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].due;
      next[1].fn();
    }
    this.t = end;
  }
}
