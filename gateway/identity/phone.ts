// Phone numbers by code (`identity.phone`): a signed-in user's getPhoneNumber code is exchanged
// at WeChat (getuserphonenumber, with the shared access_token) for the number, which goes to the
// backend in headers wxgw states (X-WX-Phone, X-WX-Phone-Country, beside the verified openid) and
// to the client only masked. The number is never logged.
import type { Reason } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { WechatConfig } from '../types/policy.js';
import { errcodeOf } from '../wechat/access-token.js';
import { PHONE_PATH, maskPhone, readPhoneAnswer } from '../wechat/phone-number.js';
import type { LoginUpstreamFailure, LoginUpstreamRequest, LoginUpstreamResponse } from './login.js';

/** Headers the phone endpoint states to the backend; a client can never send them. */
export const PHONE_HEADERS = ['x-wx-phone', 'x-wx-phone-country'] as const;

export type WechatCallResult = { kind: 'ok'; answer: Record<string, unknown> } | { kind: 'refused'; reason: Reason; message?: string; retryAfterMs?: number };

/** A WeChat API call made with wxgw's access_token (the egress: budgets, circuits, token renewal). */
export interface WechatCaller {
  postJson(path: string, body: Record<string, unknown>, requestId: string): Promise<WechatCallResult>;
}

export type PhoneResult = { kind: 'ok'; body: Record<string, unknown> } | { kind: 'refused'; reason: Reason; message?: string; retryAfterMs?: number };

export interface PhoneDeps {
  wechat: WechatConfig;
  caller: WechatCaller;
  callUpstream: (req: LoginUpstreamRequest) => Promise<LoginUpstreamResponse | LoginUpstreamFailure>;
  maskJson: (value: unknown) => unknown;
  logger: Logger;
  requestIdHeader: string;
}

const CODE_SHAPE = /^[\x21-\x7e]{1,256}$/;
/** Client fields that name who the user is or what the number is: never passed on from the client. */
const OWN_FIELDS = new Set(['openid', 'unionid', 'phone', 'phonenumber', 'purephonenumber', 'countrycode', 'sessionkey']);

function parse(body: Buffer): { code: string; rest: Record<string, unknown> } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { code, ...others } = v as Record<string, unknown>;
  if (typeof code !== 'string' || !CODE_SHAPE.test(code)) return undefined;
  const rest = Object.create(null) as Record<string, unknown>;
  for (const [k, value] of Object.entries(others)) if (!OWN_FIELDS.has(k.toLowerCase().replace(/[^a-z0-9]/g, ''))) rest[k] = value;
  return { code, rest };
}

function phoneReason(errcode: number): Reason {
  if (errcode === 40029) return 'phone_code_invalid';
  if (errcode === 45011) return 'wx_rate_limited';
  if (errcode === -1) return 'wx_unavailable';
  return 'wx_error';
}

export function createPhone(deps: PhoneDeps) {
  const { wechat, caller, logger } = deps;
  return {
    /** `verified`: the headers the identity guard stated (the openid, the unionid). */
    async handle(body: Buffer, ctx: { requestId: string; verified: Record<string, string> }): Promise<PhoneResult> {
      const parsed = parse(body);
      if (!parsed) return { kind: 'refused', reason: 'phone_invalid' };
      const log = logger.child({ request_id: ctx.requestId });
      const called = await caller.postJson(PHONE_PATH, { code: parsed.code }, ctx.requestId);
      if (called.kind === 'refused') return called;
      const errcode = errcodeOf(called.answer);
      if (errcode !== 0) {
        log.info({ errcode, errmsg: typeof called.answer.errmsg === 'string' ? called.answer.errmsg.slice(0, 120) : undefined }, 'WeChat refused the phone number code');
        return { kind: 'refused', reason: phoneReason(errcode) };
      }
      const phone = readPhoneAnswer(called.answer, wechat.appid);
      if (!phone) {
        log.warn('getuserphonenumber answered without phone_info for this appid');
        return { kind: 'refused', reason: 'wx_error', message: 'WeChat answered the phone number request without a number for this app' };
      }
      const res = await deps.callUpstream({
        path: '',
        headers: {
          ...ctx.verified,
          'content-type': 'application/json',
          [deps.requestIdHeader]: ctx.requestId,
          'x-wx-phone': phone.phoneNumber,
          'x-wx-phone-country': phone.countryCode,
        },
        body: Buffer.from(JSON.stringify(parsed.rest)),
      });
      if ('failed' in res) return { kind: 'refused', reason: res.failed, message: 'the upstream could not be told the phone number' };
      if (res.statusCode < 200 || res.statusCode > 299) return { kind: 'refused', reason: 'upstream_unavailable', message: `the upstream refused the phone number (HTTP ${res.statusCode})` };
      const answer: Record<string, unknown> = { phone: maskPhone(phone.purePhoneNumber) };
      if (res.body.length > 0) {
        let user: unknown;
        try {
          user = JSON.parse(res.body.toString('utf8'));
        } catch {
          return { kind: 'refused', reason: 'upstream_unavailable', message: "the upstream's answer to the phone number is not JSON" };
        }
        try {
          answer.user = deps.maskJson(user);
        } catch {
          return { kind: 'refused', reason: 'mask_failed' };
        }
      }
      log.info('phone number delivered to the upstream');
      return { kind: 'ok', body: answer };
    },
  };
}

export type PhoneEndpoint = ReturnType<typeof createPhone>;
