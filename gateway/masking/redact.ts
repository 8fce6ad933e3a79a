// Keeping what responses mask out of the logs too. compileLogRedactor() turns a policy's mask
// profiles into one redactor, built once per snapshot; a log line only applies it.
//
//   compileLogRedactor(masks) -> LogRedactor
//     .fields(obj)    masked keys (and credentials, bodies) to three levels down -> '[redacted]'
//     .error(err)     a serialized error: its fields as above, message and stack scrubbed as text
//     .text(s)        masked "key": value pairs and every token a detector recognises
//     .path(p)        detected tokens in a request path
//     .query(q)       a query string: masked keys' values redacted, the rest through the detectors
import type { CompiledMask } from './compile.js';
import { detect } from './detectors.js';
import type { MaskDetector } from '../types/policy.js';

export const CENSOR = '[redacted]';

/** Names that carry credentials, whatever the policy masks. */
const CREDENTIALS = ['authorization', 'cookie', 'passphrase'];
/** Fields that may carry an upstream body whole (errors quoting a response, debug dumps). */
const BODY = 'body';
/** How deep fields() looks: the top of a log object and two levels down, as the pino paths do. */
const DEPTH = 3;

export interface LogRedactor {
  /** The log object, or a copy with masked fields replaced: the caller's object is never changed. */
  fields(obj: Record<string, unknown>): Record<string, unknown>;
  /** A serialized error (pino's err serializer output), fields redacted and message/stack scrubbed. */
  error(err: Record<string, unknown> & { message: string; stack: string }): Record<string, unknown>;
  text(text: string): string;
  path(path: string): string;
  query(query: string): string;
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

const own = Object.prototype.hasOwnProperty;

/** Objects a log line spells out field by field; anything else (an Error, a Buffer) is a leaf. */
function walkable(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function redactObject(obj: Record<string, unknown>, keys: ReadonlySet<string>, depth: number): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in obj) {
    if (!own.call(obj, k)) continue;
    const v = obj[k];
    let r = v;
    if (keys.has(k)) r = v === undefined ? v : CENSOR;
    else if (depth < DEPTH && walkable(v)) r = redactObject(v, keys, depth + 1);
    if (r === v) continue;
    out ??= Array.isArray(obj) ? ([...obj] as unknown as Record<string, unknown>) : { ...obj };
    // defineProperty: an own `__proto__` key stays a key.
    Object.defineProperty(out, k, { value: r, enumerable: true, writable: true, configurable: true });
  }
  return out ?? obj;
}

/**
 * Unlike response masking, detectors here look at tokens inside a text, delimited by characters
 * that cannot belong to the shapes they match; `"key": value` pairs whose key a profile masks get
 * the value `"[redacted]"` (keys written with escapes are not recognised).
 */
export function compileLogRedactor(masks: Iterable<CompiledMask>): LogRedactor {
  const masked = new Set<string>();
  const found = new Set<MaskDetector>();
  for (const mask of masks) {
    for (const k of mask.keys) masked.add(k);
    for (const d of mask.detectors) found.add(d);
  }
  const detectors = [...found];
  const fieldKeys: ReadonlySet<string> = new Set([...CREDENTIALS, BODY, ...masked]);
  const names = [...masked].map((k) => escapeRegExp(JSON.stringify(k).slice(1, -1))).join('|');
  const pair = masked.size === 0 ? undefined : new RegExp(`"(${names})"(\\s*:\\s*)(?:"(?:[^"\\\\]|\\\\.)*"?|-?[0-9][0-9.eE+-]*|true|false|null)`, 'g');

  const tokens = detectors.length === 0 ? (s: string): string => s : (s: string): string => s.replace(CANDIDATES, (t) => detectToken(detectors, t));
  const text = (s: string): string => tokens(pair ? s.replace(pair, `"$1"$2"${CENSOR}"`) : s);

  /** A query value as sent (percent-encoded, `+` for space): decoded to be examined, re-encoded if masked. */
  const queryValue = (raw: string): string => {
    if (!/[%+]/.test(raw)) return tokens(raw);
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw.replace(/\+/g, ' '));
    } catch {
      return tokens(raw);
    }
    const shown = tokens(decoded);
    return shown === decoded ? raw : encodeURIComponent(shown);
  };
  const queryName = (raw: string): string => {
    if (!raw.includes('%')) return raw;
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  };
  const queryPair = (pairText: string): string => {
    const eq = pairText.indexOf('=');
    if (eq < 0) return queryValue(pairText);
    const name = pairText.slice(0, eq);
    if (fieldKeys.has(queryName(name))) return `${name}=${CENSOR}`;
    return `${name}=${queryValue(pairText.slice(eq + 1))}`;
  };

  return Object.freeze({
    fields: (obj: Record<string, unknown>) => redactObject(obj, fieldKeys, 1),
    // The error sits at the top of the log object, so its own fields are one level down.
    error: (err: Record<string, unknown> & { message: string; stack: string }) => ({ ...redactObject(err, fieldKeys, 2), message: text(err.message), stack: text(err.stack) }),
    text,
    path: tokens,
    query: (q: string) => (q === '' ? q : q.split('&').map(queryPair).join('&')),
  });
}
