// wxgw's own login: exchanges a wx.login() code for the user's openid at WeChat, keeps the
// session_key server-side, and answers a session token the gateway verifies on later requests.
//
// A code is exchanged at most once. Within an instance, concurrent logins with one code share
// one in-flight exchange and one answer (mini-programs retry eagerly on flaky networks); across
// instances, and after the exchange, a claim in the store refuses the code as wx_code_used
// without calling WeChat. The claim is taken before the call, so a code whose exchange failed
// (timeout, WeChat busy) is spent too: the client calls wx.login() again, which it has to do
// anyway since WeChat may have consumed the code.
import { createHash, randomBytes } from 'node:crypto';
import type { Reason } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { IdentityConfig, WechatConfig } from '../types/policy.js';
import { StoreUnavailableError, type Store } from '../store/store.js';
import { WechatApiClient, WechatApiError, type Code2SessionResult } from '../wechat/api-client.js';
import type { SessionSigner } from './session-token.js';
import { sessionRecordKey } from './sessions.js';

export type LoginResult =
  | { kind: 'ok'; body: Record<string, unknown> }
  /** `headers`: for the refusal's answer (Retry-After on wx_rate_limited). */
  | { kind: 'refused'; reason: Reason; message?: string; headers?: Record<string, string> };

export interface LoginUpstreamRequest {
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface LoginUpstreamResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** The upstream could not be asked: refused, dropped or timed out, as the client will be told. */
export interface LoginUpstreamFailure {
  failed: Reason;
}

export interface LoginDeps {
  identity: IdentityConfig;
  wechat: WechatConfig;
  store: Store;
  signer: SessionSigner;
  logger: Logger;
  /**
   * Sends the login notice to `identity.login.upstream.upstream`; required when that is set.
   * Transport failures resolve as a LoginUpstreamFailure (the caller knows its transport).
   */
  callUpstream?: (req: LoginUpstreamRequest) => Promise<LoginUpstreamResponse | LoginUpstreamFailure>;
  /** The mask profile for the upstream's answer; without one the answer is passed as is. */
  maskJson?: (value: unknown) => unknown;
  /** The header the request id travels in (`server.request_id.header`); default x-request-id. */
  requestIdHeader?: string;
}

export interface Login {
  /** Concurrent logins with one code resolve to the same result object: do not mutate it. */
  handle(body: Buffer, ctx: { requestId: string }): Promise<LoginResult>;
  close(): void;
}

/** How long a used code stays refused; WeChat codes expire after 5 minutes. */
const CODE_CLAIM_TTL = 10 * 60 * 1000;
/** wx.login() codes are 32 characters; the bound only keeps junk out of the store and the URL. */
const CODE_SHAPE = /^[\x21-\x7e]{1,128}$/;

/**
 * Seconds a client waits after wx_rate_limited: 45011 is WeChat's per-minute API frequency
 * limit, so a minute is when the next call can succeed.
 */
const RATE_LIMITED_RETRY_AFTER = '60';

/** errcodes that mean wxgw itself is misconfigured, not that the user did anything wrong. */
const CONFIG_ERRCODES = new Set([40013, 40125, 41002, 41004]);

function wechatReason(err: WechatApiError): Reason {
  switch (err.kind) {
    case 'timeout':
      return 'wx_timeout';
    case 'network':
    case 'bad_answer':
      return 'wx_error';
    case 'errcode':
      switch (err.errcode) {
        case 40029:
          return 'wx_code_invalid';
        case 40163:
          return 'wx_code_used';
        case 45011:
          return 'wx_rate_limited';
        case 40226:
          return 'wx_user_blocked';
        case -1:
          return 'wx_unavailable';
        default:
          return 'wx_error';
      }
  }
}

function parseLoginBody(body: Buffer): { code: string; rest: Record<string, unknown> } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { code, ...rest } = parsed as Record<string, unknown>;
  if (typeof code !== 'string' || !CODE_SHAPE.test(code)) return undefined;
  return { code, rest };
}

/** Deeper login bodies are refused: no client needs them, and the walk below stays bounded. */
const MAX_DEPTH = 32;

/** A field name as naming styles spell it: `openId`, `open_id`, `OPENID`, `Open-Id` are one name. */
function foldFieldName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/**
 * `value` without any field, at any depth, whose folded name is in `names`; the names dropped
 * are pushed to `dropped`. Undefined when nested deeper than MAX_DEPTH.
 */
function withoutFields(value: unknown, names: ReadonlySet<string>, dropped: string[], depth = 0): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return undefined;
  if (Array.isArray(value)) {
    const items: unknown[] = [];
    for (const item of value) {
      const kept = withoutFields(item, names, dropped, depth + 1);
      if (kept === undefined) return undefined;
      items.push(kept);
    }
    return items;
  }
  // No prototype: a `__proto__` field stays a field instead of becoming the object's prototype.
  const out = Object.create(null) as Record<string, unknown>;
  for (const [key, field] of Object.entries(value)) {
    if (names.has(foldFieldName(key))) {
      dropped.push(key);
      continue;
    }
    const kept = withoutFields(field, names, dropped, depth + 1);
    if (kept === undefined) return undefined;
    out[key] = kept;
  }
  return out;
}

export function createLogin(deps: LoginDeps): Login {
  const { identity, store, signer, logger } = deps;
  if (!identity.session) throw new Error('identity.session is required with identity.login');
  const sessionTtl = identity.session.ttl;
  const upstream = identity.login?.upstream;
  const callUpstream = deps.callUpstream;
  if (upstream && !callUpstream) throw new Error('identity.login.upstream is set but no callUpstream was given');
  const maskJson = deps.maskJson ?? ((value: unknown) => value);
  const wechat = new WechatApiClient(deps.wechat);
  const inFlight = new Map<string, Promise<LoginResult>>();
  // Who the user is comes from WeChat alone: a client's own field of that name, in any spelling
  // and at any depth, never reaches login.upstream, which might read it before the headers.
  const identityFields = new Set(['openid', 'unionid', 'sessionkey', identity.upstream_header, identity.unionid_header].map(foldFieldName));

  async function exchange(code: string, codeHash: string, rest: Record<string, unknown>, requestId: string): Promise<LoginResult> {
    // Enough to correlate log lines about one code, too little to replay it.
    const log = logger.child({ request_id: requestId, code_hash: codeHash.slice(0, 12) });
    if (!(await store.claim(`wxcode:${codeHash}`, CODE_CLAIM_TTL))) {
      log.info('login refused: code already exchanged');
      return { kind: 'refused', reason: 'wx_code_used' };
    }

    let user: Code2SessionResult;
    try {
      user = await wechat.code2Session(code);
    } catch (err) {
      if (!(err instanceof WechatApiError)) throw err;
      const reason = wechatReason(err);
      const fields = { reason, wx_failure: err.kind, errcode: err.errcode, errmsg: err.errmsg };
      if (err.errcode !== undefined && CONFIG_ERRCODES.has(err.errcode)) {
        log.error(fields, `WeChat rejected wxgw's credentials (errcode ${err.errcode}): check wechat.appid and wechat.app_secret in the policy`);
      } else if (reason === 'wx_code_invalid' || reason === 'wx_code_used' || reason === 'wx_user_blocked') {
        log.info(fields, 'login refused by WeChat');
      } else {
        log.warn({ ...fields, err: err.kind === 'errcode' ? undefined : err.message }, 'WeChat login exchange failed');
      }
      return reason === 'wx_rate_limited' ? { kind: 'refused', reason, headers: { 'retry-after': RATE_LIMITED_RETRY_AFTER } } : { kind: 'refused', reason };
    }

    const sid = randomBytes(16).toString('base64url');
    const record = { session_key: user.session_key, openid: user.openid, unionid: user.unionid };
    await store.put(sessionRecordKey(sid), JSON.stringify(record), sessionTtl);
    const { token, expiresIn } = await signer.sign({ openid: user.openid, sid });
    // The client learns its own openid (it is who the token says it is); session_key and
    // unionid stay on the server.
    const answer: Record<string, unknown> = { token, expires_in: expiresIn, openid: user.openid };

    if (upstream && callUpstream) {
      const told = await tellUpstream(upstream.path, user, rest, requestId, callUpstream);
      if (told.kind === 'refused') {
        log.warn({ reason: told.reason }, 'login refused: the upstream did not accept the new session');
        return told;
      }
      answer.user = told.user;
    }
    // Who logged in is the access line's to say, as an HMAC of the openid (proxy/access-log-fields.ts).
    log.info('login succeeded');
    return { kind: 'ok', body: answer };
  }

  async function tellUpstream(
    path: string,
    user: Code2SessionResult,
    rest: Record<string, unknown>,
    requestId: string,
    call: NonNullable<LoginDeps['callUpstream']>,
  ): Promise<{ kind: 'ok'; user: unknown } | { kind: 'refused'; reason: Reason; message: string }> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      [deps.requestIdHeader ?? 'x-request-id']: requestId,
      [identity.upstream_header]: user.openid,
    };
    if (user.unionid) headers[identity.unionid_header] = user.unionid;
    // The client's other login fields (invite codes, scene, ...) travel on; who the user is
    // travels only in the headers wxgw sets.
    const res = await call({ path, headers, body: Buffer.from(JSON.stringify(rest)) });
    if ('failed' in res) return { kind: 'refused', reason: res.failed, message: 'the upstream could not be told about the login' };
    if (res.statusCode < 200 || res.statusCode > 299) {
      return { kind: 'refused', reason: 'upstream_unavailable', message: `the upstream refused the login (HTTP ${res.statusCode})` };
    }
    if (res.body.length === 0) return { kind: 'ok', user: null };
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body.toString('utf8'));
    } catch {
      return { kind: 'refused', reason: 'upstream_unavailable', message: 'the upstream answered the login with a body that is not JSON' };
    }
    try {
      return { kind: 'ok', user: maskJson(parsed) };
    } catch {
      return { kind: 'refused', reason: 'mask_failed', message: "the upstream's login answer could not be masked" };
    }
  }

  async function guarded(code: string, codeHash: string, rest: Record<string, unknown>, requestId: string): Promise<LoginResult> {
    try {
      return await exchange(code, codeHash, rest, requestId);
    } catch (err) {
      if (err instanceof StoreUnavailableError) {
        logger.warn({ request_id: requestId, err: err.message }, 'login refused: the store is unavailable');
        return { kind: 'refused', reason: 'store_unavailable' };
      }
      throw err;
    }
  }

  return {
    handle(body, ctx) {
      const parsed = parseLoginBody(body);
      if (!parsed) return Promise.resolve({ kind: 'refused', reason: 'login_invalid' });
      const dropped: string[] = [];
      const rest = withoutFields(parsed.rest, identityFields, dropped) as Record<string, unknown> | undefined;
      if (!rest) return Promise.resolve({ kind: 'refused', reason: 'login_invalid', message: `the login request is nested more than ${MAX_DEPTH} levels deep` });
      if (dropped.length > 0) logger.info({ request_id: ctx.requestId, fields: dropped.slice(0, 16) }, 'login fields named like identity fields dropped');
      const codeHash = createHash('sha256').update(parsed.code).digest('hex');
      // Looked up and registered without an await in between: no second exchange can start.
      const running = inFlight.get(codeHash);
      if (running) return running;
      const promise = guarded(parsed.code, codeHash, rest, ctx.requestId).finally(() => inFlight.delete(codeHash));
      inFlight.set(codeHash, promise);
      return promise;
    },
    close() {
      // Closing lets exchanges already sent finish; nothing is left for the caller to wait on.
      wechat.close().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'closing the WeChat API pool failed'));
    },
  };
}
