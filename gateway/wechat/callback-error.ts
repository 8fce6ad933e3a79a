// The one error the WeChat protocol code throws for a callback it cannot accept; the guards turn
// it into a refusal with its reason.
import { GatewayError, type Reason } from '../errors.js';

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
