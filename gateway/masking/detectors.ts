// Detectors recognise personal data by its shape, whatever key it sits under. detect() looks at
// one whole value (a string, or a number's text); detectInText() also at the tokens of a longer
// text (`call 13812345678`), cut where no shape below can continue. They are strict on purpose: a
// masked order number breaks an app, so a near-miss is left alone.
//
//   cn_mobile  a mainland mobile number and nothing else: `1[3-9]` + 9 digits, either contiguous
//              or grouped 3-4-4 by single spaces or single dashes (`138 1234 5678`), optionally
//              preceded by `+86`, `86` or `0086` and an optional single space or dash. Masked to
//              the first 3 and last 4 digits of the national number (`138****5678`; a prefix is
//              kept, separators in the masked middle are masked too).
//   cn_idcard  an 18-character resident ID: first digit 1-8 (the region codes), a real calendar
//              birth date from 1900-01-01 to today, and a valid ISO 7064 MOD 11-2 check character
//              (`X` or `x` for 10). Masked to the first 6 and last 4 (`110101********123X`). The
//              15-digit IDs retired in 2013 are not recognised.
//   bank_card  13 to 19 digits, contiguous or in groups separated by single spaces, passing Luhn,
//              with a first digit that card schemes use (2-6 or 9; a leading 2 only in the Mir
//              2200-2204 and Mastercard 2221-2720 ranges) and 13 digits only with a leading 4.
//              That rules out millisecond, microsecond and nanosecond Unix timestamps (they start
//              with 1 until 2286) and date-prefixed order numbers (`2023...`, `2024...`). A 10%
//              chance remains that another digit run starting 3-6 or 9 passes Luhn: those are
//              masked too. Masked to the first 6 and last 4 digits, spaces removed.
//   email      `local@domain`: local part of [A-Za-z0-9._%+-], 1 to 64 characters; domain of at
//              least two dot-separated labels of [A-Za-z0-9-]; 254 characters at most. Masked to
//              the first character of the local part and the whole domain (`a****@example.com`).
import type { MaskDetector, PartialRule } from '../types/policy.js';
import { partialMask } from './values.js';

/** Longest value any detector can match, in UTF-16 units: longer strings are not examined. */
export const DETECT_MAX_LENGTH = 254;

const MOBILE = /^(\+86|0086|86)?[ -]?(1[3-9]\d(?:\d{8}|([ -])\d{4}\3\d{4}))$/;
const IDCARD = /^[1-8]\d{5}(\d{4})(\d{2})(\d{2})\d{3}[\dXx]$/;
const CARD = /^\d+(?: \d+)*$/;
const EMAIL = /^([A-Za-z0-9._%+-]{1,64})(@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$/;

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = '10X98765432';

const STAR = (keep_start: number, keep_end: number): PartialRule => ({ keep_start, keep_end, char: '*' });

function maskMobile(s: string): string | undefined {
  const m = MOBILE.exec(s);
  if (m === null) return undefined;
  // A prefix without a separator would run into the number and read as one longer number:
  // `86` alone in front is fine (`8613812345678`), a lone separator without a prefix is not.
  if (m[1] === undefined && s.length !== m[2]!.length) return undefined;
  const national = m[2]!;
  return s.slice(0, s.length - national.length) + partialMask(national, STAR(3, 4));
}

export function isValidIdCard(s: string): boolean {
  const m = IDCARD.exec(s);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const born = new Date(Date.UTC(year, month - 1, day));
  if (year < 1900 || born.getUTCMonth() !== month - 1 || born.getUTCDate() !== day || born.getTime() > Date.now()) return false;
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += (s.charCodeAt(i) - 48) * ID_WEIGHTS[i]!;
  return ID_CHECK[sum % 11] === s[17]!.toUpperCase();
}

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = digits.length - 1, double = false; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

export function isBankCard(digits: string): boolean {
  if (digits.length < 13 || digits.length > 19) return false;
  const first = digits[0]!;
  if (digits.length === 13 && first !== '4') return false;
  if (first === '2') {
    const iin = Number(digits.slice(0, 4));
    if (!(iin >= 2200 && iin <= 2204) && !(iin >= 2221 && iin <= 2720)) return false;
  } else if (!'345369'.includes(first)) {
    return false;
  }
  return luhnValid(digits);
}

function maskCard(s: string): string | undefined {
  if (!CARD.test(s)) return undefined;
  const digits = s.includes(' ') ? s.replace(/ /g, '') : s;
  return isBankCard(digits) ? partialMask(digits, STAR(6, 4)) : undefined;
}

function maskEmail(s: string): string | undefined {
  if (s.length > DETECT_MAX_LENGTH) return undefined;
  const m = EMAIL.exec(s);
  return m === null ? undefined : partialMask(m[1]!, STAR(1, 0)) + m[2]!;
}

/** Detectors run in this order whatever the profile lists: an ID number can also pass Luhn. */
export const DETECTOR_ORDER: readonly MaskDetector[] = ['cn_idcard', 'bank_card', 'cn_mobile', 'email'];

const MASKERS: Record<MaskDetector, (s: string) => string | undefined> = {
  cn_idcard: (s) => (isValidIdCard(s) ? partialMask(s, STAR(6, 4)) : undefined),
  bank_card: maskCard,
  cn_mobile: maskMobile,
  email: maskEmail,
};

/**
 * Cheap test on the first character: every detector's match starts with a digit, `+`, or (email)
 * a local-part character, and email needs an `@`. Keeps ordinary text away from the regexes.
 */
function mayMatch(s: string): boolean {
  if (s.length < 6 || s.length > DETECT_MAX_LENGTH) return false;
  const c = s.charCodeAt(0);
  return (c >= 48 && c <= 57) || c === 43 || s.includes('@');
}

/** The masked form of `s` when one of `detectors` recognises it, else undefined. */
export function detect(detectors: readonly MaskDetector[], s: string): string | undefined {
  if (!mayMatch(s)) return undefined;
  for (const d of detectors) {
    const masked = MASKERS[d](s);
    if (masked !== undefined) return masked;
  }
  return undefined;
}

// Digit runs with the separators the detectors accept (`+86 138-1234-5678`, `6222 0212 ...`), and
// email-shaped words. Bounded by characters that cannot belong to the same shape, so that a digit
// run inside a longer word (`abc13812345678`, a hex id) is not a candidate.
const CANDIDATES = /(?<![0-9A-Za-z+])\+?[0-9](?:[0-9 -]*[0-9Xx])?(?![0-9A-Za-z])|(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;
const MAY_HOLD = /[0-9@]/;

function detectToken(detectors: readonly MaskDetector[], token: string): string {
  const whole = detect(detectors, token);
  if (whole !== undefined) return whole;
  // A run like `2023-11-26 13812345678` matches nothing whole: try its space-separated parts,
  // and their dash-separated parts.
  if (!token.includes(' ') && !token.includes('-')) return token;
  return token
    .split(' ')
    .map((part) => detect(detectors, part) ?? part.split('-').map((p) => detect(detectors, p) ?? p).join('-'))
    .join(' ');
}

/**
 * The masked form of a text in which one of `detectors` recognises something, the whole text or
 * tokens inside it; undefined when nothing is recognised. Works on any string, and on bytes read
 * as latin1 (every shape is ASCII, so other bytes pass unchanged).
 */
export function detectInText(detectors: readonly MaskDetector[], text: string): string | undefined {
  const whole = detect(detectors, text);
  if (whole !== undefined) return whole;
  if (text.length < 6 || !MAY_HOLD.test(text)) return undefined;
  let changed = false;
  const out = text.replace(CANDIDATES, (token) => {
    const masked = detectToken(detectors, token);
    if (masked !== token) changed = true;
    return masked;
  });
  return changed ? out : undefined;
}
