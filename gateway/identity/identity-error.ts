// Why a token was not accepted. Only these reasons ever reach the client, on purpose: telling a
// caller which check failed (signature, issuer, audience, algorithm) helps nobody but a forger.
// session_revoked is said only of a token whose signature verified: its owner logged out.
import { GatewayError } from '../errors.js';

export type TokenRefusal = 'token_invalid' | 'token_expired' | 'session_revoked';

export class IdentityError extends GatewayError {
  declare readonly reason: TokenRefusal;
  constructor(reason: TokenRefusal, message?: string, options?: { cause?: unknown }) {
    super(reason, message, options);
    this.name = 'IdentityError';
  }
}
