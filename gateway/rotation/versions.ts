// A secret during a rotation: the value in force and, for a while after it changed, the one it
// replaced, so what was signed or encrypted with the old value just before the change (a push in
// flight, a live session token, a Pay notification WeChat retries) still verifies. The previous
// value is only ever a second try after the current one failed, and only until its window ends:
// it never widens what the current value accepts.
//
//   rotate(key, before, value, windowMs, now) -> SecretVersions (the value read by a reload)
//   versioned(versions, make, clock)          -> Versioned<T>   (what a guard tries, in order)
import { createHash, timingSafeEqual } from 'node:crypto';

export interface PreviousValue {
  readonly value: string;
  /** Epoch milliseconds: from then on the previous value is refused. */
  readonly until: number;
}

export interface SecretVersions {
  /** Dotted key path, e.g. `wechat.token`: what logs and metrics name, never the value. */
  readonly key: string;
  readonly current: string;
  /** The value a reload replaced, for the secret's rotation window; carried from snapshot to snapshot. */
  readonly previous: PreviousValue | undefined;
  /** The value the policy itself names as previous (`previous:` with its `until`); survives restarts. */
  readonly declared?: PreviousValue;
}

/** The clock windows are measured with, and the count of each use of a previous value. */
export interface RotationClock {
  now(): number;
  /** Called each time a previous value is what verified: once it stays still, the old value can go. */
  usedPrevious(key: string): void;
}

export const systemClock: RotationClock = { now: () => Date.now(), usedPrevious: () => undefined };

/** Constant time over the values' digests, so neither content nor length shows. */
export function sameSecret(a: string, b: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The versions after a reload read `value`: unchanged, the window of a previous value runs on;
 * changed, the value in force before becomes the previous one for `windowMs` (none when 0).
 */
export function rotate(key: string, before: SecretVersions | undefined, value: string, windowMs: number, now: number): SecretVersions {
  if (before === undefined) return { key, current: value, previous: undefined };
  if (sameSecret(before.current, value)) return before.previous && before.previous.until <= now ? { key, current: value, previous: undefined } : before;
  return { key, current: value, previous: windowMs > 0 ? { value: before.current, until: now + windowMs } : undefined };
}

/** A secret compiled for use (a cipher, a key object), current and previous. */
export interface Versioned<T> {
  readonly current: T;
  /** The previous ones whose window lasts now, most recently replaced first. */
  previous(): T[];
  /** Counts one use of a previous value. */
  usedPrevious(): void;
}

/** The previous values to try, each once, the one a reload replaced first. */
export function previousValues(versions: SecretVersions): PreviousValue[] {
  const out: PreviousValue[] = [];
  for (const p of [versions.previous, versions.declared]) {
    if (p && !sameSecret(p.value, versions.current) && !out.some((o) => sameSecret(o.value, p.value))) out.push(p);
  }
  return out;
}

export function versioned<T>(versions: SecretVersions, make: (value: string) => T, clock: RotationClock): Versioned<T> {
  const current = make(versions.current);
  const previous = previousValues(versions).map((p) => ({ value: make(p.value), until: p.until }));
  return {
    current,
    previous: () => {
      if (previous.length === 0) return [];
      const now = clock.now();
      return previous.filter((p) => now < p.until).map((p) => p.value);
    },
    usedPrevious: () => clock.usedPrevious(versions.key),
  };
}

/** Versions of a value that has no history (a guard compiled outside a gateway, in tests). */
export function only(key: string, value: string): SecretVersions {
  return { key, current: value, previous: undefined };
}
