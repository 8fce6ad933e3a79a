// getuserphonenumber (the code from a mini-program's getPhoneNumber button for the user's
// number): the request body and what the answer holds.
// https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-info/phone-number/getPhoneNumber.html

export const PHONE_PATH = '/wxa/business/getuserphonenumber';

export interface PhoneInfo {
  /** With the country code for numbers outside mainland China, e.g. `13800138000` or `+1 2025550123`. */
  readonly phoneNumber: string;
  /** Without country code. */
  readonly purePhoneNumber: string;
  readonly countryCode: string;
}

/** The phone_info of an answer, checked against the appid it must be for; undefined when absent or for another app. */
export function readPhoneAnswer(answer: Record<string, unknown>, appid: string): PhoneInfo | undefined {
  const info = answer.phone_info;
  if (typeof info !== 'object' || info === null) return undefined;
  const { phoneNumber, purePhoneNumber, countryCode, watermark } = info as Record<string, unknown>;
  if (typeof phoneNumber !== 'string' || typeof purePhoneNumber !== 'string' || purePhoneNumber === '') return undefined;
  const wm = watermark as Record<string, unknown> | undefined;
  if (wm && typeof wm === 'object' && wm.appid !== undefined && wm.appid !== appid) return undefined;
  return { phoneNumber, purePhoneNumber, countryCode: typeof countryCode === 'string' || typeof countryCode === 'number' ? String(countryCode) : '' };
}

/** What the client sees: the first three and last four digits, e.g. `138****5678`. */
export function maskPhone(pure: string): string {
  if (pure.length <= 7) return '*'.repeat(pure.length);
  return pure.slice(0, 3) + '*'.repeat(pure.length - 7) + pure.slice(-4);
}
