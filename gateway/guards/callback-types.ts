// The one contract both callback guards (WeChat message push, WeChat Pay notifications) share
// with the HTTP server: the server reads the whole body (up to `maxBody`), hands it over with the
// query and headers, and acts on the outcome. The guards never touch sockets, so they are tested
// and benchmarked in-process.
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError, type Reason } from '../errors.js';

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
      sealReply?: (reply: { contentType: string | undefined; body: Buffer }) => { contentType: string; body: Buffer };
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

/** The callback reasons the protocol code can fail with. */
export type CallbackReason = Extract<
  Reason,
  | 'signature_invalid'
  | 'timestamp_stale'
  | 'nonce_replayed'
  | 'appid_mismatch'
  | 'callback_malformed'
  | 'serial_unknown'
  | 'decrypt_failed'
  | 'body_too_large'
>;

/** Thrown by the protocol helpers; the guards turn it into a `refuse` outcome. */
export class CallbackError extends GatewayError {
  declare readonly reason: CallbackReason;
  /** For the log: what failed, never the secret or content it failed on. */
  readonly detail: string;
  constructor(reason: CallbackReason, detail: string) {
    super(reason);
    this.name = 'CallbackError';
    this.detail = detail;
  }
}

export function refuse(reason: Reason, detail: string): CallbackOutcome {
  return { kind: 'refuse', reason, detail };
}
