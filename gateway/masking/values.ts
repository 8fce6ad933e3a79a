// What each rule turns one value into. Shared by the byte-level rewriter and maskValue() so that a
// value masks the same whichever way it arrives.
import { createHmac } from 'node:crypto';
import type { PartialRule } from '../types/policy.js';
import type { MaskAction } from './compile.js';

/**
 * Length of the `char` run that replaces a whole value that has no text of its own (object,
 * array, boolean, null) under a `partial` or `hash` rule: fixed, so the replacement says nothing
 * about the size of what it hides.
 */
export const OPAQUE_LENGTH = 4;

const SURROGATE = /[\uD800-\uDFFF]/;

/** Keeps `keep_start`/`keep_end` code points; a value too short to keep anything is all `char`. */
export function partialMask(text: string, rule: PartialRule): string {
  // Without surrogates every UTF-16 unit is a code point, and slicing needs no array.
  if (!SURROGATE.test(text)) {
    const n = text.length;
    if (n <= rule.keep_start + rule.keep_end) return rule.char.repeat(n);
    return text.slice(0, rule.keep_start) + rule.char.repeat(n - rule.keep_start - rule.keep_end) + text.slice(n - rule.keep_end);
  }
  const cps = Array.from(text);
  const n = cps.length;
  if (n <= rule.keep_start + rule.keep_end) return rule.char.repeat(n);
  return cps.slice(0, rule.keep_start).join('') + rule.char.repeat(n - rule.keep_start - rule.keep_end) + cps.slice(n - rule.keep_end).join('');
}

export function hmacHex(key: string | undefined, text: string): string {
  // The policy requires hash_key with hash rules; an empty key is still an HMAC, never the plain text.
  return createHmac('sha256', key ?? '').update(text, 'utf8').digest('hex');
}

/**
 * The replacement string for a value under a non-drop action. `text` is a string's decoded value
 * or a number's source text; undefined for objects, arrays, booleans and null, which are replaced
 * whole: by the `replace` value, or by OPAQUE_LENGTH times `char` (`*` for hash).
 */
export function applyAction(action: Exclude<MaskAction, { kind: 'drop' }>, text: string | undefined, hashKey: string | undefined): string {
  switch (action.kind) {
    case 'replace':
      return action.value;
    case 'hash':
      return text === undefined ? '*'.repeat(OPAQUE_LENGTH) : hmacHex(hashKey, text);
    case 'partial':
      return text === undefined ? action.rule.char.repeat(OPAQUE_LENGTH) : partialMask(text, action.rule);
  }
}
