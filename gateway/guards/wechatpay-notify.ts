// The WeChat Pay API v3 notification endpoint of a route (`wechatpay_notify`). Missing or
// repeated Wechatpay-* headers are callback_malformed (400), not signature_invalid: such a
// request is not a notification at all, and WeChat Pay always sends all four.
//
// Order of checks: header shape, key by serial, signature (stateless, so forged requests stop
// before they cost anything or touch the store), clock, decryption, and last the claim
// (callback-replay.ts), so only a notification that passed everything else is recorded. Its keys:
// the signed request (Wechatpay-Timestamp, -Nonce and the signature's bytes) and the
// notification's own `id`, the same on every retry.
//
// During a rotation of the APIv3 key the replaced key still decrypts for its window
// (rotation/versions.ts), tried only after the current key failed: retried notifications carry
// resources encrypted as they were first sent. The signature, checked before, is the platform
// key's and has nothing to do with the APIv3 key.
import type { Store } from '../store/store.js';
import type { WechatPayConfig, WechatPayNotifyConfig } from '../types/policy.js';
import type { IncomingHttpHeaders } from 'node:http';
import { deliverOnce, refuse, type CallbackGuard, type CallbackOutcome, type CallbackRequest } from './callback-types.js';
import { CallbackLedger, ledgerTimes, messageKey, requestKey } from './callback-replay.js';
import { payNotificationId } from '../wechat/callback-message-id.js';
import { CallbackError } from '../wechat/callback-error.js';
import { compilePayKeys, decryptPayResource, parsePayNotification, verifyPaySignature, type PayPlaintext } from '../wechat/pay-notify.js';
import { only, systemClock, versioned, type RotationClock, type SecretVersions, type Versioned } from '../rotation/versions.js';

/**
 * Set on every forwarded notification: `signature` (the body as received) or `decrypted` (the
 * body is the decrypted resource: JSON, or text/plain for other text; the envelope's id,
 * event_type and the resource's original_type follow in x-wechatpay-notify-id,
 * x-wechatpay-event-type and x-wechatpay-original-type; the Wechatpay-* signature headers are
 * dropped).
 */
export const PAY_VERIFIED_HEADER = 'x-wechatpay-verified';

/** Every header this guard may set, for the server to strip from clients' requests. */
export const PAY_HEADERS = [PAY_VERIFIED_HEADER, 'x-wechatpay-notify-id', 'x-wechatpay-event-type', 'x-wechatpay-original-type'] as const;

/** WeChat Pay's signature headers, which a decrypting route keeps from the upstream. */
const SIGNATURE_HEADERS = ['wechatpay-signature', 'wechatpay-serial', 'wechatpay-timestamp', 'wechatpay-nonce', 'wechatpay-signature-type'] as const;

const TIMESTAMP = /^\d{1,12}$/;
const NONCE = /^[\x21-\x7e]{1,128}$/;
// Envelope values copied into headers: WeChat's ids and event types are short and plain.
const HEADER_SAFE = /^[A-Za-z0-9._-]{1,64}$/;

export function compileWechatPayNotify(
  cfg: WechatPayNotifyConfig,
  pay: WechatPayConfig,
  store: Store,
  now: () => number = Date.now,
  secrets: { apiv3Key?: SecretVersions; clock: RotationClock } = { clock: systemClock },
  /** The route's upstream time budget in ms (callback-replay.ts ledgerTimes). */
  upstreamBudget?: number,
): CallbackGuard {
  const prefix = 'cb:pay:';
  const ledger = new CallbackLedger(store, ledgerTimes(cfg.max_skew, upstreamBudget));
  const keys = compilePayKeys(pay.keys);
  let apiv3Keys: Versioned<Buffer> | undefined;
  if (cfg.decrypt) {
    if (Buffer.byteLength(pay.apiv3_key ?? '', 'utf8') !== 32) throw new Error('wechatpay_notify with decrypt: true needs a 32-byte wechatpay.apiv3_key');
    const versions = secrets.apiv3Key ?? only('wechatpay.apiv3_key', pay.apiv3_key!);
    apiv3Keys = versioned(versions, (k) => Buffer.from(k, 'utf8'), secrets.clock);
  }

  /** Decrypts with the current key, else with a previous one in its window; throws the current key's error. */
  function decrypt(resource: Record<string, unknown>): PayPlaintext {
    try {
      return decryptPayResource(apiv3Keys!.current, resource);
    } catch (err) {
      if (!(err instanceof CallbackError)) throw err;
      for (const previous of apiv3Keys!.previous()) {
        if (previous.length !== 32) continue;
        let plain: PayPlaintext;
        try {
          plain = decryptPayResource(previous, resource);
        } catch {
          continue;
        }
        apiv3Keys!.usedPrevious();
        return plain;
      }
      throw err;
    }
  }

  async function verified(req: CallbackRequest): Promise<CallbackOutcome> {
    if (req.method !== 'POST') return refuse('method_not_allowed', `${req.method} on a WeChat Pay notification`);
    const h = headers(req.headers);
    if (typeof h === 'string') return refuse('callback_malformed', h);
    const key = keys.get(h.serial.toUpperCase());
    if (!key) return refuse('serial_unknown', 'Wechatpay-Serial names no configured key');
    if (!verifyPaySignature(key, h.timestamp, h.nonce, req.body, h.signature)) {
      return refuse('signature_invalid', 'Wechatpay-Signature does not verify');
    }
    const skew = Math.abs(now() - Number(h.timestamp) * 1000);
    if (skew > cfg.max_skew) return refuse('timestamp_stale', `Wechatpay-Timestamp is ${Math.round(skew / 1000)} s off`);

    let outcome: CallbackOutcome & { kind: 'forward' };
    if (apiv3Keys) {
      const notification = parsePayNotification(req.body);
      const extra: Record<string, string> = { [PAY_VERIFIED_HEADER]: 'decrypted' };
      if (notification.id && HEADER_SAFE.test(notification.id)) extra['x-wechatpay-notify-id'] = notification.id;
      if (notification.event_type && HEADER_SAFE.test(notification.event_type)) extra['x-wechatpay-event-type'] = notification.event_type;
      const originalType = notification.resource.original_type;
      if (typeof originalType === 'string' && HEADER_SAFE.test(originalType)) extra['x-wechatpay-original-type'] = originalType;
      const { plain, contentType } = decrypt(notification.resource);
      outcome = {
        kind: 'forward',
        body: plain,
        contentType,
        headers: extra,
        // They sign the envelope, not the resource that replaced it: a backend checking them would fail, or trust the wrong bytes.
        dropHeaders: SIGNATURE_HEADERS,
      };
    } else {
      outcome = {
        kind: 'forward',
        body: req.body,
        contentType: req.headers['content-type'] ?? 'application/json',
        headers: { [PAY_VERIFIED_HEADER]: 'signature' },
      };
    }
    // The signature's bytes, not its text: base64 spelt differently (padding bits) verifies the same.
    const request = requestKey(prefix, [h.timestamp, h.nonce, Buffer.from(h.signature, 'base64').toString('base64')]);
    const id = payNotificationId(req.body);
    return deliverOnce(ledger, { request, ...(id !== undefined && { message: messageKey(prefix, id) }) }, outcome);
  }

  async function check(req: CallbackRequest): Promise<CallbackOutcome> {
    if (req.body.length > cfg.max_body) return refuse('body_too_large', `body of ${req.body.length} bytes`);
    try {
      return await verified(req);
    } catch (err) {
      if (err instanceof CallbackError) return refuse(err.reason, err.detail);
      throw err;
    }
  }

  return { maxBody: cfg.max_body, check };
}

interface PayHeaders {
  serial: string;
  signature: string;
  timestamp: string;
  nonce: string;
}

function headers(h: IncomingHttpHeaders): PayHeaders | string {
  const out: Partial<PayHeaders> = {};
  for (const name of ['serial', 'signature', 'timestamp', 'nonce'] as const) {
    const value = h[`wechatpay-${name}`];
    if (typeof value !== 'string' || value.length === 0) return `Wechatpay-${name} header missing`;
    out[name] = value;
  }
  if (!TIMESTAMP.test(out.timestamp!)) return 'Wechatpay-Timestamp is not a number';
  if (!NONCE.test(out.nonce!)) return 'Wechatpay-Nonce is malformed';
  return out as PayHeaders;
}
