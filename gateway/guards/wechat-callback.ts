// The WeChat message-push endpoint of a route (`wechat_callback`): URL verification (GET) and
// pushes (POST), in plain mode (`signature` over token, timestamp, nonce: the body itself is not
// signed) or safe mode (`encrypt_type=aes`, or WeCom's `msg_signature` alone; `msg_signature`
// also covers the ciphertext). One route serves one app (its id, Token and EncodingAESKey); a
// decrypted push reaches the upstream as a plain-mode push, so a WeChat SDK there works unchanged.
//
// Order of checks: the shape of the request, then the signature (cheap and stateless, so forged
// requests stop before they cost anything or touch the store), then the clock, then decryption,
// and last the claim (callback-replay.ts), so only a callback that passed everything else is
// recorded. The claim's keys: the signed request (timestamp, nonce and signature or
// msg_signature) and the message's own id (MsgId, or FromUserName + CreateTime + Event), which
// needs the EncodingAESKey in safe mode: a route that does not decrypt decrypts for the id alone.
//
// During a rotation the Token and the EncodingAESKey each have a previous value for a while
// (rotation/versions.ts): tried only after the current one failed, and a reply is sealed with
// the values the push itself verified with, which are the ones WeChat is still using.
import { randomInt } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { WechatCallbackConfig, WechatConfig } from '../types/policy.js';
import { deliverOnce, refuse, type CallbackGuard, type CallbackOutcome, type CallbackRequest } from './callback-types.js';
import { CallbackLedger, ledgerTimes, messageKey, requestKey, type CallbackKeys } from './callback-replay.js';
import { pushMessageId, pushMessageIdOf } from '../wechat/callback-message-id.js';
import { CallbackError } from '../wechat/callback-error.js';
import { safeEqualHex, wechatSignature } from '../wechat/signature.js';
import { WechatMsgCrypto } from '../wechat/msg-crypto.js';
import { only, systemClock, versioned, type RotationClock, type SecretVersions, type Versioned } from '../rotation/versions.js';
import {
  CONTENT_TYPES,
  buildReplyEnvelope,
  checkCallbackBody,
  detectFormat,
  envelopeOnly,
  extractEncrypt,
  isReplyEnvelope,
  parseCallbackBody,
  refuseDtd,
  type BodyFormat,
  type EnvelopeCase,
} from '../wechat/callback-body.js';

/**
 * Set on every forwarded push: `signature` (plain mode, body as received, which WeChat does not
 * sign), `msg_signature` (safe mode, ciphertext body as received) or `decrypted` (safe mode, the
 * body is the decrypted message).
 */
export const VERIFIED_HEADER = 'x-wx-callback-verified';

const TIMESTAMP = /^\d{1,12}$/;
// Nonces become store keys; WeChat's are short digit strings.
const NONCE = /^[\x21-\x7e]{1,128}$/;

/** The Token and EncodingAESKey with their previous values, as the snapshot in force has them. */
export interface CallbackSecrets {
  token?: SecretVersions;
  encodingAesKey?: SecretVersions;
  clock: RotationClock;
}

/** The secrets one request verified with; its reply is sealed with the same. */
interface Matched {
  token: string;
  crypto: WechatMsgCrypto;
}

export function compileWechatCallback(
  cfg: WechatCallbackConfig,
  wechat: WechatConfig,
  store: Store,
  now: () => number = Date.now,
  secrets: CallbackSecrets = { clock: systemClock },
  /** The route's upstream time budget in ms (callback-replay.ts ledgerTimes). */
  upstreamBudget?: number,
): CallbackGuard {
  if (!wechat.token) throw new Error('wechat_callback needs wechat.token');
  const tokens = versioned(secrets.token ?? only('wechat.token', wechat.token), (t) => t, secrets.clock);
  const aesKey = wechat.encoding_aes_key;
  const cryptos: Versioned<WechatMsgCrypto> | undefined = aesKey
    ? versioned(secrets.encodingAesKey ?? only('wechat.encoding_aes_key', aesKey), (k) => new WechatMsgCrypto(k, wechat.appid), secrets.clock)
    : undefined;
  if (cfg.decrypt && !cryptos) throw new Error('wechat_callback with decrypt: true needs wechat.encoding_aes_key');
  const prefix = `cb:wx:${wechat.appid}:`;
  const ledger = new CallbackLedger(store, ledgerTimes(cfg.max_skew, upstreamBudget));

  /** The token whose signature over `parts` is `given`: the current one, else a previous one in its window. */
  function signedWith(parts: string[], given: string): string | undefined {
    if (safeEqualHex(wechatSignature([tokens.current, ...parts]), given)) return tokens.current;
    for (const previous of tokens.previous()) {
      if (!safeEqualHex(wechatSignature([previous, ...parts]), given)) continue;
      tokens.usedPrevious();
      return previous;
    }
    return undefined;
  }

  /** Decrypts with the current key, else with a previous one in its window; throws the current key's error. */
  function decrypt(encrypt: string): { message: string; crypto: WechatMsgCrypto } {
    const current = cryptos!.current;
    try {
      return { message: current.decrypt(encrypt), crypto: current };
    } catch (err) {
      if (!(err instanceof CallbackError)) throw err;
      for (const previous of cryptos!.previous()) {
        let message: string;
        try {
          message = previous.decrypt(encrypt);
        } catch {
          continue;
        }
        cryptos!.usedPrevious();
        return { message, crypto: previous };
      }
      throw err;
    }
  }

  /** The clock check: stateless, unlike the claim (deliverOnce), which records the request. */
  function fresh(timestamp: string): CallbackOutcome | undefined {
    const skew = Math.abs(now() - Number(timestamp) * 1000);
    return skew > cfg.max_skew ? refuse('timestamp_stale', `timestamp is ${Math.round(skew / 1000)} s off`) : undefined;
  }

  /**
   * The keys of one request signed with `signature`: timestamp and nonce in sorted order, as the
   * signature has them, and the hex in one case, so no respelling of a signed request is new.
   */
  function keyOf(q: Params, signature: string): string {
    return requestKey(prefix, [...[q.timestamp, q.nonce].sort(), signature.toLowerCase()]);
  }

  /** `id`: the message's own (callback-message-id.ts), when it names one. */
  function keys(q: Params, signature: string, id: string | undefined, covers?: string): CallbackKeys {
    return { request: keyOf(q, signature), ...(id !== undefined && { message: messageKey(prefix, id) }), ...(covers !== undefined && { covers: [keyOf(q, covers)] }) };
  }

  /** The id of a decrypted message, in its own format (a JSON push may hold an XML message, and back). */
  function messageId(message: string): string | undefined {
    return pushMessageId(message, detectFormat(undefined, message));
  }

  /** The id of the message of a push the route passes on encrypted; undefined when it does not decrypt. */
  function idOnly(encrypt: string): string | undefined {
    if (!cryptos) return undefined;
    try {
      return messageId(decrypt(encrypt).message);
    } catch (err) {
      if (err instanceof CallbackError) return undefined;
      throw err;
    }
  }

  async function verifyUrl(q: Params): Promise<CallbackOutcome> {
    const echostr = q.echostr;
    if (!echostr) return refuse('callback_malformed', 'URL verification without echostr');
    // WeCom-style verification sends no `signature`: the echostr is encrypted and signed like a message.
    const encrypted = q.signature === undefined && q.msg_signature !== undefined && cryptos !== undefined;
    if (encrypted) {
      if (signedWith([q.timestamp, q.nonce, echostr], q.msg_signature!) === undefined) {
        return refuse('signature_invalid', 'msg_signature does not match');
      }
    } else if (q.signature === undefined) {
      return refuse('callback_malformed', 'URL verification without signature');
    } else if (signedWith([q.timestamp, q.nonce], q.signature) === undefined) {
      return refuse('signature_invalid', 'signature does not match');
    }
    const stale = fresh(q.timestamp);
    if (stale) return stale;
    const answer = encrypted ? decrypt(echostr).message : echostr;
    return deliverOnce(ledger, keys(q, encrypted ? q.msg_signature! : q.signature!, undefined), { kind: 'answer', status: 200, contentType: 'text/plain; charset=utf-8', body: answer });
  }

  async function plainPush(q: Params, req: CallbackRequest): Promise<CallbackOutcome> {
    if (cfg.decrypt) return refuse('callback_malformed', 'plain-mode push to a route that decrypts (expected encrypt_type=aes)');
    if (q.signature === undefined) return refuse('callback_malformed', 'push without signature');
    if (signedWith([q.timestamp, q.nonce], q.signature) === undefined) {
      return refuse('signature_invalid', 'signature does not match');
    }
    const stale = fresh(q.timestamp);
    if (stale) return stale;
    // The body is unsigned in plain mode; it is at least held to the same parsing rules, so no
    // DTD reaches the upstream's parser.
    const format = detectFormat(req.headers['content-type'], req.body);
    const flat = checkCallbackBody(req.body, format);
    // A flat XML body was read by the check already; anything else is parsed for its id.
    const id = flat ? pushMessageIdOf(flat) : pushMessageId(req.body, detectFormat(undefined, req.body));
    return deliverOnce(ledger, keys(q, q.signature, id), {
      kind: 'forward',
      body: req.body,
      contentType: req.headers['content-type'] ?? CONTENT_TYPES[format],
      headers: { [VERIFIED_HEADER]: 'signature' },
    });
  }

  async function safePush(q: Params, req: CallbackRequest): Promise<CallbackOutcome> {
    if (q.msg_signature === undefined) return refuse('callback_malformed', 'safe-mode push without msg_signature');
    const format = detectFormat(req.headers['content-type'], req.body);
    const fields = parseCallbackBody(req.body, format);
    const { encrypt, casing } = extractEncrypt(fields, format);
    const token = signedWith([q.timestamp, q.nonce, encrypt], q.msg_signature);
    if (token === undefined) return refuse('signature_invalid', 'msg_signature does not match');
    const stale = fresh(q.timestamp);
    if (stale) return stale;
    if (!cfg.decrypt) {
      // Compatible mode: the plain fields beside Encrypt are not covered by msg_signature.
      const envelope = envelopeOnly(fields, format, casing);
      // This route takes plain pushes too: the request's `signature` would sign one, so it is used up with it.
      return deliverOnce(ledger, keys(q, q.msg_signature, idOnly(encrypt), q.signature), {
        kind: 'forward',
        body: envelope ?? req.body,
        contentType: envelope ? CONTENT_TYPES[format] : (req.headers['content-type'] ?? CONTENT_TYPES[format]),
        headers: { [VERIFIED_HEADER]: 'msg_signature' },
      });
    }
    // WeChat sends `signature` (token, timestamp, nonce) in safe mode too, and it goes on to the
    // upstream as the plain-mode push's signature: it must be what WeChat signed as well.
    if (q.signature !== undefined && !safeEqualHex(wechatSignature([token, q.timestamp, q.nonce]), q.signature)) {
      return refuse('signature_invalid', 'signature does not match');
    }
    const { message, crypto } = decrypt(encrypt);
    // The signature covers the ciphertext, not what it holds: no DTD inside it reaches the
    // upstream's parser either.
    refuseDtd(message, 'decrypted message');
    return deliverOnce(ledger, keys(q, q.msg_signature, messageId(message)), {
      kind: 'forward',
      body: Buffer.from(message, 'utf8'),
      contentType: CONTENT_TYPES[format],
      headers: { [VERIFIED_HEADER]: 'decrypted' },
      query: plainQuery(req.query),
      sealReply: (reply) => seal(format, casing, reply, { token, crypto }),
    });
  }

  /**
   * Encrypts and signs the upstream's passive reply. `success` and empty go back as they are, and
   * so does a reply that already is an encrypted envelope (a backend whose SDK encrypts itself).
   * A non-2xx reply is never sealed and never shown: an error page is the backend's internals, and
   * WeChat reads only the status (it retries), so it gets the status with an empty body.
   */
  function seal(
    format: BodyFormat,
    casing: EnvelopeCase,
    reply: { status?: number; contentType: string | undefined; body: Buffer },
    { token, crypto }: Matched,
  ): { contentType: string; body: Buffer } {
    if (reply.status !== undefined && (reply.status < 200 || reply.status > 299)) {
      return { contentType: 'text/plain; charset=utf-8', body: Buffer.alloc(0) };
    }
    const text = reply.body.toString('utf8');
    if (text.trim() === '' || text.trim() === 'success') {
      return { contentType: reply.contentType ?? 'text/plain; charset=utf-8', body: reply.body };
    }
    if (isReplyEnvelope(reply.body)) return { contentType: reply.contentType ?? CONTENT_TYPES[format], body: reply.body };
    const encrypt = crypto.encrypt(text);
    const timestamp = String(Math.floor(now() / 1000));
    const nonce = String(randomInt(100_000_000, 1_000_000_000));
    const signature = wechatSignature([token, timestamp, nonce, encrypt]);
    const envelope = buildReplyEnvelope(format, { encrypt, signature, timestamp, nonce }, casing);
    return { contentType: CONTENT_TYPES[format], body: Buffer.from(envelope, 'utf8') };
  }

  async function check(req: CallbackRequest): Promise<CallbackOutcome> {
    if (req.body.length > cfg.max_body) return refuse('body_too_large', `body of ${req.body.length} bytes`);
    const q = params(req.query);
    if (typeof q === 'string') return refuse('callback_malformed', q);
    try {
      if (req.method === 'GET') return await verifyUrl(q);
      if (req.method !== 'POST') return refuse('method_not_allowed', `${req.method} on a WeChat callback`);
      // WeCom always encrypts and says so by msg_signature alone: no encrypt_type, no signature.
      const type = q.encrypt_type ?? (q.signature === undefined && q.msg_signature !== undefined ? 'aes' : undefined);
      if (type === undefined || type === 'raw') return await plainPush(q, req);
      if (type === 'aes') return await safePush(q, req);
      return refuse('callback_malformed', 'unknown encrypt_type');
    } catch (err) {
      if (err instanceof CallbackError) return refuse(err.reason, err.detail);
      throw err;
    }
  }

  return { maxBody: cfg.max_body, check };
}

/**
 * The query a decrypted push goes upstream with: the client's without `encrypt_type` and
 * `msg_signature`. An SDK (wechatpy's parse, EasyWeChat's server) decides safe mode from
 * `encrypt_type=aes` and would try to decrypt the plaintext again; `signature`, `timestamp`,
 * `nonce` and `openid` stay, so its plain-mode check of `signature` still passes.
 */
function plainQuery(query: URLSearchParams): string {
  const out = new URLSearchParams(query);
  out.delete('encrypt_type');
  out.delete('msg_signature');
  return out.toString();
}

interface Params {
  timestamp: string;
  nonce: string;
  signature?: string;
  msg_signature?: string;
  echostr?: string;
  encrypt_type?: string;
}

/**
 * The query parameters the checks read, or why they are unusable. A repeated parameter is
 * refused: the upstream might read a different copy than the one that was verified.
 */
function params(query: URLSearchParams): Params | string {
  const out: Partial<Record<keyof Params, string>> = {};
  for (const name of ['timestamp', 'nonce', 'signature', 'msg_signature', 'echostr', 'encrypt_type'] as const) {
    const all = query.getAll(name);
    if (all.length > 1) return `query parameter ${name} is repeated`;
    if (all.length === 1) out[name] = all[0];
  }
  if (out.timestamp === undefined || !TIMESTAMP.test(out.timestamp)) return 'timestamp missing or not a number';
  if (out.nonce === undefined || !NONCE.test(out.nonce)) return 'nonce missing or malformed';
  return out as Params;
}
