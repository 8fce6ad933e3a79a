// What the client may see of decrypted open data before any profile of the policy applies: never
// the unionid (login keeps it server-side too) or the watermark, and phone numbers, ID and bank
// card numbers, e-mail addresses only partly. The policy's profile for the endpoint masks on top;
// it can hide more, never show this back.
import { compileMaskProfile, type CompiledMask } from '../masking/compile.js';
import { maskValue } from '../masking/json-mask.js';

const MASK_PHONE = { keep_start: 3, keep_end: 4, char: '*' };

const OPEN_DATA_MASK: CompiledMask = compileMaskProfile({
  name: 'wxgw-open-data',
  drop: ['unionId', 'watermark', 'sessionKey'].map((key) => ({ kind: 'key', key })),
  // `phoneNumber` carries the country code for numbers outside the mainland, which no detector knows.
  partial: ['phoneNumber', 'purePhoneNumber'].map((key) => ({ target: { kind: 'key', key }, rule: MASK_PHONE })),
  replace: [],
  hash: [],
  detect: ['cn_mobile', 'cn_idcard', 'bank_card', 'email'],
  content_types: [],
  stream_above: 1024 * 1024,
  key_match: 'fold',
  pos: { file: '(built in)', line: 0, col: 0, path: 'identity.decrypt' },
});

/** The client's view of `value`: the built-in open-data mask, then `profile` when the policy names one. */
export function openDataView(profile: CompiledMask | undefined): (value: unknown) => unknown {
  return (value) => {
    const masked = maskValue(OPEN_DATA_MASK, value);
    return profile ? maskValue(profile, masked) : masked;
  };
}
