// The one contract both callback guards (WeChat message push, WeChat Pay notifications) share
// with the HTTP server: the server reads the whole body (up to `maxBody`), hands it over with the
// query and headers, and acts on the outcome. The guards never touch sockets, so they are tested
// and benchmarked in-process. Also what both do last: claim the nonce.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Reason } from '../errors.js';
import type { Store } from '../store/store.js';

export interface CallbackRequest {
  method: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The raw body bytes exactly as received; signatures are over these bytes. */
  body: Buffer;
}

export type CallbackOutcome =
  /** The gateway answers itself (URL verification echo); the upstream is not involved. */
  | { kind: 'answer'; status: number; contentType: string; body: string }
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
       * Gives the nonce back. The server calls it when it refuses the callback after this guard
       * (a rate limit, the store) or the client goes before it was forwarded: WeChat retries
       * such a callback, and the retry must not be taken for a replay.
       */
      release?: () => void;
    };

/** Turns the upstream's reply to a verified callback into the signed, encrypted reply WeChat expects. */
export type Seal = NonNullable<Extract<CallbackOutcome, { kind: 'forward' }>['sealReply']>;

export interface CallbackGuard {
  /** Largest body in bytes; the server should stop reading past it and refuse body_too_large. */
  readonly maxBody: number;
  /**
   * Never rejects for a bad callback (that is a `refuse` outcome). Rejects with the store's
   * StoreUnavailableError when the nonce cannot be recorded, so the server applies the store's
   * `on_unavailable` policy in one place for every feature that needs the store.
   */
  check(req: CallbackRequest): Promise<CallbackOutcome>;
}

export function refuse(reason: Reason, detail: string): CallbackOutcome {
  return { kind: 'refuse', reason, detail };
}

/** A claim the store could not confirm is given back up to this many more times, a second apart. */
const RELEASE_RETRIES = 5;
const RELEASE_RETRY_MS = 1000;

/**
 * Claims a callback's nonce for `ttlMs`: the means to give it back, or undefined when an earlier
 * callback holds it (a replay). When the store does not answer in time the claim is given back
 * before the error goes on: Redis may still record it after the gateway stopped waiting, and the
 * give-back, sent after it on the same connection, runs after it.
 */
export async function claimNonce(store: Store, key: string, ttlMs: number): Promise<(() => void) | undefined> {
  const holder = randomUUID();
  const release = (): void => giveBack(store, key, holder, 0);
  let first: boolean;
  try {
    first = await store.claim(key, ttlMs, holder);
  } catch (err) {
    release();
    throw err;
  }
  return first ? release : undefined;
}

/** In the background and best effort: a give-back the store cannot take now is retried a few times. */
function giveBack(store: Store, key: string, holder: string, attempt: number): void {
  store.release(key, holder).catch(() => {
    if (attempt < RELEASE_RETRIES) setTimeout(() => giveBack(store, key, holder, attempt + 1), RELEASE_RETRY_MS).unref();
  });
}
