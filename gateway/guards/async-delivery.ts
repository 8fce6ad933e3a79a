// A callback route with `delivery: async` (docs/policy.md): once the callback guard verified a
// message, it is queued instead of forwarded, and WeChat gets its success answer at once. The
// delivery worker (delivery/worker.ts) takes it from the queue to the upstream.
//
// A message is queued once per idempotency key within the route's dedupe window (a claim in the
// store): WeChat's retry of a message already queued, even re-signed with a new nonce, is
// answered success again and not queued twice. When the queue cannot take it the claim goes back
// and the callback is refused (503), so WeChat's retry can queue it.
import { randomUUID } from 'node:crypto';
import { StoreUnavailableError, type Store } from '../store/store.js';
import type { DeliveryQueue } from '../store/delivery-queue.js';
import type { RouteConfig, WechatConfig } from '../types/policy.js';
import { payKeys, pushKeys, type DeliveryKeys } from '../wechat/delivery-key.js';
import { WechatMsgCrypto } from '../wechat/msg-crypto.js';
import type { Answered } from './chain.js';

/** What the request path hands queued messages to; outlives snapshots (a reload keeps the queue). */
export interface DeliveryIntake {
  readonly queue: DeliveryQueue;
  /** Counts one message as queued, or as a retry of one already queued. */
  count(route: string, event: 'queued' | 'duplicate'): void;
}

export interface AsyncDelivery {
  /**
   * Queues a verified callback: its body and the headers the guards added, for the upstream
   * path `path`. Resolves with WeChat's success answer, for a message queued now or before;
   * rejects with StoreUnavailableError when neither the store nor the queue could take it.
   */
  accept(passed: { readonly body: Buffer | undefined; readonly added: Readonly<Record<string, string>> }, path: string): Promise<Answered>;
}

const NO_STORE = Object.freeze({ 'cache-control': 'no-store' });
// What each product takes for "received": a push's `success`, Pay's v3 success object.
const PUSH_ANSWER: Answered = Object.freeze({ kind: 'answer', status: 200, headers: NO_STORE, contentType: 'text/plain; charset=utf-8', body: 'success' });
const PAY_ANSWER: Answered = Object.freeze({ kind: 'answer', status: 200, headers: NO_STORE, contentType: 'application/json; charset=utf-8', body: '{"code":"SUCCESS","message":"成功"}' });

/** Headers that describe the body as it traveled, not the message: the worker states its own. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection']);

/** undefined for a route that delivers synchronously. */
export function compileAsyncDelivery(route: RouteConfig, wechat: WechatConfig | undefined, store: Store, intake: DeliveryIntake | undefined): AsyncDelivery | undefined {
  const push = route.wechat_callback;
  const cfg = (push ?? route.wechatpay_notify)?.async;
  if (!cfg) return undefined;
  // main.ts hands every snapshot the gateway's queue; a build without one is a wiring bug.
  if (!intake) throw new Error(`route ${route.name}: delivery: async without a delivery queue`);
  const name = route.name;
  // A route forwarding safe-mode ciphertext: the message's ids are inside it.
  const crypto = push && !push.decrypt && wechat?.encoding_aes_key ? new WechatMsgCrypto(wechat.encoding_aes_key, wechat.appid) : undefined;
  const open = crypto && ((encrypt: string): string => crypto.decrypt(encrypt));
  const keysOf = (body: Buffer, added: Readonly<Record<string, string>>): DeliveryKeys =>
    push ? pushKeys(body, added['content-type'], open) : payKeys(body, added['x-wechatpay-notify-id']);
  const answer = push ? PUSH_ANSWER : PAY_ANSWER;

  return Object.freeze({
    async accept(passed: { readonly body: Buffer | undefined; readonly added: Readonly<Record<string, string>> }, path: string): Promise<Answered> {
      const body = passed.body ?? Buffer.alloc(0);
      const { key, order } = keysOf(body, passed.added);
      const claim = `dlv:${name}:${key}`;
      const holder = randomUUID();
      if (!(await store.claim(claim, cfg.dedupe_window, holder))) {
        intake.count(name, 'duplicate');
        return answer;
      }
      const headers: Record<string, string> = {};
      for (const [h, v] of Object.entries(passed.added)) if (!FRAMING.has(h)) headers[h] = v;
      try {
        await intake.queue.enqueue({ route: name, key, order, path, headers, body, queuedAt: Date.now() });
      } catch (err) {
        store.release(claim, holder).catch(() => undefined);
        throw new StoreUnavailableError('the delivery queue could not take the callback', { cause: err });
      }
      intake.count(name, 'queued');
      return answer;
    },
  });
}
