// The decrypt endpoint (`identity.decrypt`): the mini-program sends WeChat's `encryptedData` + `iv`
// (and for user info `rawData` + `signature`) with its session token; wxgw decrypts them with the
// session_key it kept at login, checks the watermark, and hands the plaintext to the backend's
// hook. The backend never needs the session_key; the client gets a masked view only (it could not
// read the data itself, and should not learn more of it than the backend lets through).
//
// Never logged: the session_key, the plaintext, the client's view of it.
import type { Reason } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { StoreUnavailableError, type Store } from '../store/store.js';
import type { IdentityConfig } from '../types/policy.js';
import { DataCryptError, decryptOpenData, rawDataSigned } from '../wechat/data-crypt.js';
import type { LoginResult, LoginUpstreamFailure, LoginUpstreamRequest, LoginUpstreamResponse } from './login.js';
import { readSession, type SessionRef } from './sessions.js';

export interface DecryptDeps {
  decrypt: NonNullable<IdentityConfig['decrypt']>;
  identity: IdentityConfig;
  /** The login's app id (`wechat.appid` or `wechat.apps.NAME.appid`): what the watermark must name. */
  appid: string;
  store: Store;
  logger: Logger;
  /** Epoch milliseconds, for the watermark's age. */
  now: () => number;
  /** Sends the plaintext to `identity.decrypt.upstream`. */
  callUpstream: (req: LoginUpstreamRequest) => Promise<LoginUpstreamResponse | LoginUpstreamFailure>;
  /** What the client may see of a value (the built-in open-data mask, then the route's profile). */
  maskClient: (value: unknown) => unknown;
  requestIdHeader: string;
}

export interface Decrypt {
  handle(body: Buffer, session: SessionRef, ctx: { requestId: string }): Promise<LoginResult>;
}

/** WeChat's encryptedData is a few KB at most (a month of WeRun steps); larger is not WeChat's. */
const MAX_FIELD = 48 * 1024;

interface DecryptRequest {
  encryptedData: string;
  iv: string;
  raw?: { rawData: string; signature: string };
}

function parseRequest(body: Buffer): DecryptRequest | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { encryptedData, iv, rawData, signature } = parsed as Record<string, unknown>;
  const text = (v: unknown): v is string => typeof v === 'string' && v !== '' && v.length <= MAX_FIELD;
  if (!text(encryptedData) || !text(iv)) return undefined;
  if (rawData === undefined && signature === undefined) return { encryptedData, iv };
  // One without the other is a client bug worth saying, not a check to skip.
  if (!text(rawData) || !text(signature)) return undefined;
  return { encryptedData, iv, raw: { rawData, signature } };
}

function refused(reason: Reason, message?: string): LoginResult {
  return message === undefined ? { kind: 'refused', reason } : { kind: 'refused', reason, message };
}

export function createDecrypt(deps: DecryptDeps): Decrypt {
  const { decrypt, identity, store, logger } = deps;
  const maxAgeSeconds = decrypt.max_age / 1000;

  async function handle(body: Buffer, session: SessionRef, requestId: string): Promise<LoginResult> {
    const log = logger.child({ request_id: requestId });
    const request = parseRequest(body);
    if (!request) return refused('decrypt_invalid');
    const held = await readSession(store, session.sid);
    // The token verified, so its session existed: it expired, was ended, or the store lost it.
    if (!held || held.record.openid !== session.openid) return refused('session_unknown');
    const sessionKey = held.record.session_key;

    if (request.raw && !rawDataSigned(request.raw.rawData, sessionKey, request.raw.signature)) {
      log.info({ reason: 'signature_invalid' }, 'open data refused: rawData signature does not verify');
      return refused('signature_invalid', "rawData's signature does not verify under this session's key");
    }
    let fields: Record<string, unknown>;
    let watermark;
    try {
      ({ fields, watermark } = decryptOpenData(sessionKey, request.encryptedData, request.iv));
    } catch (err) {
      if (!(err instanceof DataCryptError)) throw err;
      log.info({ reason: 'decrypt_failed', failure: err.failure }, 'open data refused: it does not decrypt');
      // Most often the mini-program called wx.login() again after WeChat encrypted the data, which
      // gave the user a new session_key: the data is for the old one.
      return refused('decrypt_failed', "encryptedData does not decrypt with this session's key: if the mini-program logged in again since, ask WeChat for the data again");
    }
    if (!watermark || watermark.appid !== deps.appid) {
      log.warn({ reason: 'watermark_mismatch', has_watermark: watermark !== undefined }, 'open data refused: made for another appid');
      return refused('watermark_mismatch');
    }
    const age = deps.now() / 1000 - watermark.timestamp;
    if (Math.abs(age) > maxAgeSeconds) {
      log.info({ reason: 'watermark_stale', age_seconds: Math.round(age) }, 'open data refused: its watermark is too old');
      return refused('watermark_stale');
    }

    const headers: Record<string, string> = {
      'content-type': 'application/json',
      [deps.requestIdHeader]: requestId,
      [identity.upstream_header]: session.openid,
    };
    if (held.record.unionid) headers[identity.unionid_header] = held.record.unionid;
    const res = await deps.callUpstream({ path: decrypt.upstream.path, headers, body: Buffer.from(JSON.stringify(fields)) });
    if ('failed' in res) return refused(res.failed, 'the upstream could not be given the decrypted data');
    if (res.statusCode < 200 || res.statusCode > 299) return refused('upstream_unavailable', `the upstream refused the decrypted data (HTTP ${res.statusCode})`);
    let backend: unknown = null;
    if (res.body.length > 0) {
      try {
        backend = JSON.parse(res.body.toString('utf8'));
      } catch {
        return refused('upstream_unavailable', 'the upstream answered the decrypted data with a body that is not JSON');
      }
    }
    let answer: Record<string, unknown>;
    try {
      answer = { data: deps.maskClient(fields), backend: deps.maskClient(backend) };
    } catch {
      return refused('mask_failed', 'the decrypted data could not be masked');
    }
    log.info({ fields: Object.keys(fields).filter((k) => k !== 'watermark').slice(0, 32) }, 'open data decrypted and handed to the upstream');
    return { kind: 'ok', body: answer };
  }

  return {
    async handle(body, session, ctx) {
      try {
        return await handle(body, session, ctx.requestId);
      } catch (err) {
        if (err instanceof StoreUnavailableError) return refused('store_unavailable');
        throw err;
      }
    },
  };
}
