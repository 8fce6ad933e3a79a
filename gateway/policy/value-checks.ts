// Checks of single duration and size values wherever the policy has them, each reported at its
// key. Values that are not strings were already reported by the schema and are skipped.
import type { KeyPath } from './key-path.js';
import { show, type Reporter } from './report.js';
import { MAX_TIMER_MS, parseDuration, parseSize } from './units.js';

/** The duration in milliseconds, or undefined when absent or reported. `timer`: it will be a Node timeout. */
export function checkDuration(report: Reporter, value: unknown, at: KeyPath, timer: boolean): number | undefined {
  if (typeof value !== 'string') return undefined;
  const parsed = parseDuration(value);
  if (!parsed.ok) {
    report.error(at, `${show(value)} ${parsed.why}`);
    return undefined;
  }
  if (timer && parsed.value > MAX_TIMER_MS) {
    report.error(at, `${show(value)} is longer than the longest timeout Node supports (about 24.8 days)`);
    return undefined;
  }
  return parsed.value;
}

export function checkSize(report: Reporter, value: unknown, at: KeyPath): void {
  if (typeof value !== 'string') return;
  const parsed = parseSize(value);
  if (!parsed.ok) report.error(at, `${show(value)} ${parsed.why}`);
}
