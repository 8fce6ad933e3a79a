// Keeping what responses mask out of the logs too: pino redact paths for the key names, and a
// best-effort scrub of free text (error messages that quote an upstream body).
import type { CompiledMask } from './compile.js';
import { detect } from './detectors.js';
import type { MaskDetector } from '../policy/types.js';

const PLAIN = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
// pino's path parser has no escape for these inside ["..."]; `*` alone would be a wildcard.
const UNSAYABLE = /["\\[\]]/;

/**
 * Fields that may carry an upstream body whole (errors quoting a response, debug dumps): redacted
 * as a unit, whatever their content.
 */
const BODY_PATHS = ['body', '*.body', 'err.response.body', 'err.cause.body'];

/**
 * pino redact paths for every key any profile masks: the key at the top of a log object and up to
 * two levels down (pino's `*` spans exactly one level), plus the body fields above. Keys pino
 * cannot name (containing `"`, `\`, `[`, `]`, or exactly `*`) are left out; they are still masked
 * in responses.
 */
export function logRedactPaths(masks: Iterable<CompiledMask>): string[] {
  const paths = new Set<string>(BODY_PATHS);
  for (const mask of masks) {
    for (const key of mask.keys) {
      if (key === '*' || UNSAYABLE.test(key)) continue;
      const plain = PLAIN.test(key);
      const leaf = plain ? key : `[${JSON.stringify(key)}]`;
      const child = plain ? `.${key}` : leaf;
      paths.add(leaf);
      paths.add(`*${child}`);
      paths.add(`*.*${child}`);
    }
  }
  return [...paths];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

// Digit runs with the separators the detectors accept (`+86 138-1234-5678`, `6222 0212 ...`), and
// email-shaped words. Bounded by non-word characters so that parts of longer tokens are skipped.
const CANDIDATES = /(?<![0-9A-Za-z+])\+?[0-9](?:[0-9 -]*[0-9Xx])?(?![0-9A-Za-z])|(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;

function detectToken(detectors: readonly MaskDetector[], token: string): string {
  const whole = detect(detectors, token);
  if (whole !== undefined) return whole;
  // A run like `2023-11-26 13812345678` matches nothing whole: try its space-separated parts,
  // and their dash-separated parts.
  if (!/[ -]/.test(token)) return token;
  return token
    .split(' ')
    .map((part) => detect(detectors, part) ?? part.split('-').map((p) => detect(detectors, p) ?? p).join('-'))
    .join(' ');
}

/**
 * Scrubs free text: `"key": value` pairs whose key a profile masks get the value `"[redacted]"`
 * (keys written with escapes are not recognised), and every token a profile's detector recognises
 * is masked as in a response. Unlike response masking, detectors here look at tokens inside the
 * text, delimited by characters that cannot belong to the shapes they match.
 */
export function redactText(masks: Iterable<CompiledMask>, text: string): string {
  const keys = new Set<string>();
  const detectors = new Set<MaskDetector>();
  for (const mask of masks) {
    for (const k of mask.keys) keys.add(k);
    for (const d of mask.detectors) detectors.add(d);
  }
  let out = text;
  if (keys.size > 0) {
    const names = [...keys].map((k) => escapeRegExp(JSON.stringify(k).slice(1, -1))).join('|');
    const pair = new RegExp(`"(${names})"(\\s*:\\s*)(?:"(?:[^"\\\\]|\\\\.)*"?|-?[0-9][0-9.eE+-]*|true|false|null)`, 'g');
    out = out.replace(pair, '"$1"$2"[redacted]"');
  }
  if (detectors.size > 0) {
    const list = [...detectors];
    out = out.replace(CANDIDATES, (token) => detectToken(list, token));
  }
  return out;
}
