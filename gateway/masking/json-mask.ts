// Masking a whole body in one pass, and masking values that are already parsed.
//
// maskJsonBuffer() does not JSON.parse and re-serialise: it runs the same byte-level rewriter as
// the stream, so the output keeps the upstream's formatting and exact number text, duplicate keys
// stay duplicates and are each masked, and buffered and streamed bodies mask identically.
import type { CompiledMask, MaskAction, PathNode } from './compile.js';
import { resolveEntry } from './compile.js';
import { detect, detectInText } from './detectors.js';
import { foldedHaystack } from './names.js';
import { MaskError, Rewriter } from './rewriter.js';
import { applyAction } from './values.js';

export { MaskError };

const BACKSLASH_U = Buffer.from('\\u');
const BACKSLASH_SLASH = Buffer.from('\\/');

/**
 * True when no rule can match: the profile has no detectors and none of its key names appears in
 * the raw bytes as JSON writes it. With folded names the body is folded first (foldedHaystack:
 * `"sessionKey"` becomes `"sessionkey"`, a needle). A key can be spelled with escapes
 * (`session\u005fkey`, `a\/b`), so any `\u` or `\/` in the body rules the shortcut out.
 */
function cannotMatch(mask: CompiledMask, body: Buffer): boolean {
  if (mask.detectors.length > 0 || mask.needles === null) return false;
  const backslash = body.indexOf(0x5c);
  if (backslash !== -1 && (body.indexOf(BACKSLASH_U, backslash) !== -1 || body.indexOf(BACKSLASH_SLASH, backslash) !== -1)) return false;
  for (const needle of mask.needles) if (body.indexOf(needle) !== -1) return false;
  if (mask.foldedNeedles === null) return true;
  const haystack = foldedHaystack(body);
  for (const needle of mask.foldedNeedles) if (haystack.includes(needle)) return false;
  return true;
}

/**
 * Masks a complete JSON body. `changed` is false only when the output is the input, byte for
 * byte; then `body` is the very buffer passed in. Throws MaskError when the body is not JSON
 * (checked even when nothing needs masking, except on the fast path, which never parses).
 * An empty body is returned as it is.
 */
export function maskJsonBuffer(mask: CompiledMask, body: Buffer): { changed: boolean; body: Buffer } {
  if (cannotMatch(mask, body)) return { changed: false, body };
  const rw = new Rewriter(mask);
  const head = rw.write(body);
  const tail = rw.end();
  if (!rw.changed) return { changed: false, body };
  return { changed: true, body: tail.length === 0 ? head : Buffer.concat([head, tail]) };
}

/**
 * Masks an already-parsed JSON value (objects, arrays, strings, numbers, booleans, null) and
 * returns a new value; the input is not modified. Numbers under partial or hash rules, and
 * numbers the detectors look at, use String(n), which is the source text for any number
 * JSON.parse kept exactly.
 */
export function maskValue(mask: CompiledMask, value: unknown): unknown {
  return walk(mask, value, mask.pathRoot ? [mask.pathRoot] : []);
}

function walk(mask: CompiledMask, value: unknown, nodes: PathNode[]): unknown {
  if (typeof value === 'string') {
    return mask.detectors.length > 0 ? (detectInText(mask.detectors, value) ?? value) : value;
  }
  if (typeof value === 'number') {
    return mask.detectors.length > 0 && Number.isSafeInteger(value) && value >= 0 ? (detect(mask.detectors, String(value)) ?? value) : value;
  }
  if (Array.isArray(value)) {
    const { action, next } = nodes.length > 0 ? resolveEntry(mask, nodes, undefined) : { action: undefined, next: [] };
    if (action?.kind === 'drop') return [];
    return value.map((v) => entry(mask, v, action, next));
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const { action, next } = resolveEntry(mask, nodes, mask.canon(k));
      if (action?.kind === 'drop') continue;
      // Defined rather than assigned: a member named __proto__ must stay a member.
      Object.defineProperty(out, k, { value: entry(mask, v, action, next), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

function entry(mask: CompiledMask, value: unknown, action: MaskAction | undefined, next: PathNode[]): unknown {
  if (action === undefined) return walk(mask, value, next);
  const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined;
  return applyAction(action as Exclude<MaskAction, { kind: 'drop' }>, text, mask.hashKey);
}
