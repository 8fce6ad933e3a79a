// WeChat's message-push signatures: SHA-1 hex over the parts sorted and concatenated. `signature`
// signs (token, timestamp, nonce), `msg_signature` adds the Encrypt field. The sort is the plain
// code-unit order of the official samples (PHP sort SORT_STRING, Java Arrays.sort), which is
// also what Array.prototype.sort does without a comparator.
import { createHash, timingSafeEqual } from 'node:crypto';

export function wechatSignature(parts: string[]): string {
  return createHash('sha1').update([...parts].sort().join(''), 'utf8').digest('hex');
}

/**
 * Constant-time comparison of two hex digests, case-insensitive because hex case carries no
 * meaning. Different lengths are unequal without looking at the content.
 */
export function safeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase(), 'utf8');
  const y = Buffer.from(b.toLowerCase(), 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
