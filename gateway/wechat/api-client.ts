// The WeChat server APIs wxgw calls itself (today only jscode2session), over one keep-alive
// pool. Plain data in and out; what an answer means for the client is decided by the caller.
// WeChat answers errors with HTTP 200 and `{errcode, errmsg}`, often as text/plain, so the body
// is parsed whatever its content-type says.
import { Pool } from 'undici';
import type { WechatConfig } from '../types/policy.js';

export interface Code2SessionResult {
  openid: string;
  session_key: string;
  unionid?: string;
}

export type WechatFailure = 'errcode' | 'timeout' | 'network' | 'bad_answer';

export class WechatApiError extends Error {
  readonly kind: WechatFailure;
  /** WeChat's errcode, when kind is `errcode`. */
  readonly errcode: number | undefined;
  /** WeChat's errmsg, cut short; for logs only, never for the client. */
  readonly errmsg: string | undefined;
  constructor(kind: WechatFailure, message: string, opts: { errcode?: number; errmsg?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'WechatApiError';
    this.kind = kind;
    this.errcode = opts.errcode;
    this.errmsg = opts.errmsg;
  }
}

/** jscode2session answers are a few hundred bytes; anything this large is not WeChat. */
const MAX_ANSWER = 64 * 1024;

export class WechatApiClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly appid: string;
  private readonly secret: string;
  private readonly timeout: number;

  constructor(cfg: WechatConfig) {
    if (!cfg.app_secret) throw new Error('wechat.app_secret is required to call the WeChat APIs');
    this.pool = new Pool(cfg.api_base.origin, { connections: 16, keepAliveTimeout: 30_000 });
    // A base with a path (a forward proxy, a test fake) keeps it in front of every API path.
    this.basePath = cfg.api_base.pathname.replace(/\/+$/, '');
    this.appid = cfg.appid;
    this.secret = cfg.app_secret;
    this.timeout = cfg.api_timeout;
  }

  async code2Session(code: string): Promise<Code2SessionResult> {
    const query = new URLSearchParams({ appid: this.appid, secret: this.secret, js_code: code, grant_type: 'authorization_code' });
    const answer = await this.get(`${this.basePath}/sns/jscode2session?${query}`);
    const { openid, session_key: sessionKey, unionid } = answer;
    if (typeof openid !== 'string' || openid === '' || typeof sessionKey !== 'string' || sessionKey === '') {
      throw new WechatApiError('bad_answer', 'jscode2session answered without openid and session_key');
    }
    return typeof unionid === 'string' && unionid !== ''
      ? { openid, session_key: sessionKey, unionid }
      : { openid, session_key: sessionKey };
  }

  async close(): Promise<void> {
    if (!this.pool.closed) await this.pool.close();
  }

  /** One GET under one deadline covering connect, headers and body; never retried. */
  private async get(path: string): Promise<Record<string, unknown>> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.timeout);
    let status: number;
    let text: string;
    try {
      const res = await this.pool.request({ method: 'GET', path, signal: deadline.signal });
      status = res.statusCode;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_ANSWER) {
          res.body.destroy();
          throw new WechatApiError('bad_answer', `WeChat answered with more than ${MAX_ANSWER} bytes`);
        }
        chunks.push(chunk);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      if (err instanceof WechatApiError) throw err;
      if (deadline.signal.aborted) {
        throw new WechatApiError('timeout', `WeChat did not answer within ${this.timeout} ms`, { cause: err });
      }
      throw new WechatApiError('network', `cannot reach WeChat: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new WechatApiError('bad_answer', `WeChat answered HTTP ${status} with a body that is not JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new WechatApiError('bad_answer', `WeChat answered HTTP ${status} with JSON that is not an object`);
    }
    const answer = parsed as Record<string, unknown>;
    const errcode = errcodeOf(answer.errcode);
    const { errmsg } = answer;
    if (errcode !== undefined && errcode !== 0) {
      const msg = typeof errmsg === 'string' ? errmsg.slice(0, 200) : undefined;
      throw new WechatApiError('errcode', `WeChat answered errcode ${errcode}`, { errcode, errmsg: msg });
    }
    if (status < 200 || status > 299) throw new WechatApiError('bad_answer', `WeChat answered HTTP ${status}`);
    return answer;
  }
}


/**
 * WeChat's errcode as a number: some gateways in front of WeChat (and some of its own answers)
 * send it as a string, `"40029"`, which must mean the same. Anything else is no errcode.
 */
function errcodeOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'string' && /^-?\d{1,9}$/.test(value.trim())) return Number(value.trim());
  return undefined;
}
