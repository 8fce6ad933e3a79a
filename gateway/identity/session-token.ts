// The session tokens wxgw signs at login: HS256 JWTs whose `sub` is the openid and whose `sid`
// names the server-side session (the one holding session_key). Verifying one never touches the
// store; a policy with `identity.logout` adds one store get per request for revocation
// (identity/sessions.ts, identity/verify.ts), otherwise a token stays usable until `exp`.
//
// After the signing key changed, new tokens are signed with the new key and tokens signed with
// the previous one still verify until they expire: the previous key's window is one ttl from the
// change, which no token signed before it outlives (rotation/in-force.ts).
import { SignJWT, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { IdentityConfig } from '../types/policy.js';
import { previousValues, systemClock, type RotationClock, type SecretVersions } from '../rotation/versions.js';
import { IdentityError } from './identity-error.js';

type SessionConfig = NonNullable<IdentityConfig['session']>;

export class SessionSigner {
  readonly issuer: string;
  /** Seconds a token lives; also what the login answer reports as `expires_in`. */
  readonly ttlSeconds: number;
  private readonly key: CryptoKey;
  private readonly previous: { key: CryptoKey; until: number }[];
  /** The key path previous uses are counted under. */
  private readonly name: string;
  private readonly now: () => number;
  private readonly clock: RotationClock;

  private constructor(session: SessionConfig, key: CryptoKey, previous: SessionSigner['previous'], name: string, now: () => number, clock: RotationClock) {
    this.issuer = session.issuer;
    // JWT times are whole seconds; rounding down never makes a token outlive its policy.
    this.ttlSeconds = Math.max(1, Math.floor(session.ttl / 1000));
    this.key = key;
    this.previous = previous;
    this.name = name;
    this.now = now;
    this.clock = clock;
  }

  /**
   * `now` (epoch milliseconds) exists for tests that need a token to be expired; `versions`
   * carries the previous signing key during a rotation, its window read from `clock`.
   */
  static async create(
    session: SessionConfig,
    opts: { now?: () => number; versions?: SecretVersions; clock?: RotationClock } = {},
  ): Promise<SessionSigner> {
    const key = await hmacKey(session.signing_key);
    const previous = [];
    for (const p of opts.versions ? previousValues(opts.versions) : []) previous.push({ key: await hmacKey(p.value), until: p.until });
    return new SessionSigner(session, key, previous, opts.versions?.key ?? 'identity.session.signing_key', opts.now ?? Date.now, opts.clock ?? systemClock);
  }

  async sign(claims: { openid: string; sid: string }): Promise<{ token: string; expiresIn: number }> {
    const iat = Math.floor(this.now() / 1000);
    const token = await new SignJWT({ sid: claims.sid })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.openid)
      .setIssuer(this.issuer)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.ttlSeconds)
      .sign(this.key);
    return { token, expiresIn: this.ttlSeconds };
  }

  /**
   * Rejects with IdentityError (token_expired only when the signature and issuer were right).
   * `notAfter` (epoch ms) is set for a token the previous key verified: the end of that key's
   * window, past which the token must not be believed whatever its `exp` says.
   */
  async verify(token: string): Promise<{ openid: string; sid: string; iat: number; notAfter?: number }> {
    let notAfter: number | undefined;
    let payload: JWTPayload;
    try {
      payload = await this.verifiedWith(this.key, token);
    } catch (err) {
      // Only a token the current key did not sign gets another try, and only within a window.
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) throw refusal(err);
      const now = this.clock.now();
      const found = await this.verifiedByPrevious(token, now);
      if (!found) throw refusal(err);
      if ('refused' in found) throw refusal(found.refused);
      payload = found.payload;
      this.clock.usedPrevious(this.name);
      notAfter = found.until;
    }
    const { sub, sid, iat } = payload;
    if (typeof sub !== 'string' || sub === '' || typeof sid !== 'string' || sid === '' || typeof iat !== 'number') {
      throw new IdentityError('token_invalid');
    }
    return notAfter === undefined ? { openid: sub, sid, iat } : { openid: sub, sid, iat, notAfter };
  }

  /** The payload under the first previous key in its window that signed `token`, or why it is refused (expired). */
  private async verifiedByPrevious(token: string, now: number): Promise<{ payload: JWTPayload; until: number } | { refused: unknown } | undefined> {
    for (const p of this.previous) {
      if (now >= p.until) continue;
      try {
        return { payload: await this.verifiedWith(p.key, token), until: p.until };
      } catch (err) {
        if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) return { refused: err };
      }
    }
    return undefined;
  }

  private async verifiedWith(key: CryptoKey, token: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      issuer: this.issuer,
      requiredClaims: ['sub', 'sid', 'exp', 'iat'],
      currentDate: new Date(this.now()),
    });
    return payload;
  }
}

/** A non-extractable CryptoKey: the key bytes cannot leak through the key object later. */
function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/** token_expired only when the signature and issuer were right. */
function refusal(err: unknown): IdentityError {
  if (err instanceof joseErrors.JWTExpired) return new IdentityError('token_expired', undefined, { cause: err });
  return new IdentityError('token_invalid', undefined, { cause: err });
}
