// The one contract both callback guards (WeChat message push, WeChat Pay notifications) share
// with the HTTP server: the server reads the whole body (up to `maxBody`), hands it over with the
// query and headers, and acts on the outcome. The guards never touch sockets, so they are tested
// and benchmarked in-process. Also what both do last: claim the callback once (deliverOnce).
import type { IncomingHttpHeaders } from 'node:http';
import type { Reason } from '../errors.js';
import type { CallbackDelivery, CallbackKeys, CallbackLedger } from './callback-replay.js';

export interface CallbackRequest {
  method: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The raw body bytes exactly as received; signatures are over these bytes. */
  body: Buffer;
}

export type CallbackOutcome =
  /**
   * The gateway answers itself (URL verification echo), or from the store with what an earlier
   * delivery of this request (`replayed: request`) or of its message (`message`) got; the
   * upstream is not involved.
   */
  | { kind: 'answer'; status: number; contentType: string; body: string | Buffer; replayed?: 'request' | 'message' }
  /** `detail` is for the log only and never holds the token, keys or message contents. */
  | { kind: 'refuse'; reason: Reason; detail: string }
  /**
   * Send `body` upstream with `contentType` and the extra `headers` (which the server must also
   * strip from the client's request, so a caller cannot claim verification it did not get).
   * `sealReply`, when present, must be applied to the upstream's answer before it goes back.
   */
  | {
      kind: 'forward';
      body: Buffer;
      contentType: string;
      headers: Record<string, string>;
      /** `status`: the upstream's; only a 2xx reply is sealed (absent: taken as 200). */
      sealReply?: (reply: { status?: number; contentType: string | undefined; body: Buffer }) => { contentType: string; body: Buffer };
      /**
       * The query string (without `?`) the upstream gets instead of the client's: a decrypted push
       * loses `encrypt_type` and `msg_signature`, so a WeChat SDK behind sees a plain-mode push.
       */
      query?: string;
      /** Request headers, lower-case, that must not reach the upstream (Pay signatures over a body that was replaced). */
      dropHeaders?: readonly string[];
      /**
       * How the delivery ends: committed with the answer once the upstream answered below 500,
       * released when it did not, when a later guard refused the callback, or when the store failed.
       */
      delivery?: CallbackDelivery;
    };

/** Turns the upstream's reply to a verified callback into the signed, encrypted reply WeChat expects. */
export type Seal = NonNullable<Extract<CallbackOutcome, { kind: 'forward' }>['sealReply']>;

export interface CallbackGuard {
  /** Largest body in bytes; the server should stop reading past it and refuse body_too_large. */
  readonly maxBody: number;
  /**
   * Never rejects for a bad callback (that is a `refuse` outcome). Rejects with the store's
   * StoreUnavailableError when the callback cannot be claimed, so the server applies the store's
   * `on_unavailable` policy in one place for every feature that needs the store.
   */
  check(req: CallbackRequest): Promise<CallbackOutcome>;
}

export function refuse(reason: Reason, detail: string): CallbackOutcome {
  return { kind: 'refuse', reason, detail };
}

/**
 * The last step of both guards: `outcome` claimed once in the ledger (callback-replay.ts). A
 * forward holds its delivery; a callback delivered before is answered as it was then; one whose
 * delivery is in flight past the wait gets 503 callback_in_flight, which WeChat retries.
 */
export async function deliverOnce(ledger: CallbackLedger, keys: CallbackKeys, outcome: Extract<CallbackOutcome, { kind: 'forward' | 'answer' }>): Promise<CallbackOutcome> {
  const answered = outcome.kind === 'answer' ? { status: outcome.status, contentType: outcome.contentType, body: Buffer.from(outcome.body) } : undefined;
  const claim = await ledger.acquire(keys, answered);
  switch (claim.kind) {
    case 'owned':
      return outcome.kind === 'forward' ? { ...outcome, delivery: claim.delivery } : outcome;
    case 'replay':
      return { kind: 'answer', status: claim.answer.status, contentType: claim.answer.contentType, body: claim.answer.body, replayed: claim.by };
    case 'in_flight':
      return refuse('callback_in_flight', 'an earlier delivery of this callback is still in flight');
    case 'used':
      return refuse('nonce_replayed', 'this signature was already used by a callback of another mode');
  }
}
