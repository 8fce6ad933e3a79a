// The session tokens wxgw signs at login: HS256 JWTs whose `sub` is the openid and whose `sid`
// names the server-side session (the one holding session_key). Stateless on purpose: verifying
// one never touches the store, so a revoked session stays usable until `exp` (revocation is not
// offered; keep `identity.session.ttl` short).
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import type { IdentityConfig } from '../types/policy.js';
import { IdentityError } from './identity-error.js';

type SessionConfig = NonNullable<IdentityConfig['session']>;

export class SessionSigner {
  readonly issuer: string;
  /** Seconds a token lives; also what the login answer reports as `expires_in`. */
  readonly ttlSeconds: number;
  private readonly key: CryptoKey;
  private readonly now: () => number;

  private constructor(session: SessionConfig, key: CryptoKey, now: () => number) {
    this.issuer = session.issuer;
    // JWT times are whole seconds; rounding down never makes a token outlive its policy.
    this.ttlSeconds = Math.max(1, Math.floor(session.ttl / 1000));
    this.key = key;
    this.now = now;
  }

  /** `now` (epoch milliseconds) exists for tests that need a token to be expired. */
  static async create(session: SessionConfig, opts: { now?: () => number } = {}): Promise<SessionSigner> {
    // A non-extractable CryptoKey: the key bytes cannot leak through the key object later.
    const key = await crypto.subtle.importKey(
      'raw',
      new TextEncoder().encode(session.signing_key),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign', 'verify'],
    );
    return new SessionSigner(session, key, opts.now ?? Date.now);
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

  /** Rejects with IdentityError (token_expired only when the signature and issuer were right). */
  async verify(token: string): Promise<{ openid: string; sid: string }> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        issuer: this.issuer,
        requiredClaims: ['sub', 'sid', 'exp'],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new IdentityError('token_expired', undefined, { cause: err });
      throw new IdentityError('token_invalid', undefined, { cause: err });
    }
    const { sub, sid } = payload;
    if (typeof sub !== 'string' || sub === '' || typeof sid !== 'string' || sid === '') {
      throw new IdentityError('token_invalid');
    }
    return { openid: sub, sid };
  }
}
