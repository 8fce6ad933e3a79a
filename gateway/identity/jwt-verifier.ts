// Verifies the JWTs the legacy backend already issues, so clients logged in the old way keep
// working behind the gateway. The algorithm allow-list is always explicit (never `none`, never
// taken from the token), and a key only ever verifies the family of algorithms it belongs to:
// a public key is never used as an HMAC secret.
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  createLocalJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { IdentityConfig } from '../types/policy.js';
import { IdentityError } from './identity-error.js';

type JwtConfig = NonNullable<IdentityConfig['jwt']>;

const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];
const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const PSS_ALGS = ['PS256', 'PS384', 'PS512'];
// JWK curve names, then the OpenSSL names Node reports for a KeyObject.
const EC_ALGS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const EDDSA_ALGS = ['EdDSA', 'Ed25519'];

function publicKeyAlgs(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return RSA_ALGS;
    case 'rsa-pss':
      return PSS_ALGS;
    case 'ec': {
      const alg = EC_ALGS[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return alg ? [alg] : [];
    }
    case 'ed25519':
      return EDDSA_ALGS;
    default:
      return [];
  }
}

function jwkAlgs(jwk: { kty?: unknown; crv?: unknown }): string[] {
  switch (jwk.kty) {
    case 'RSA':
      return RSA_ALGS;
    case 'EC': {
      const alg = typeof jwk.crv === 'string' ? EC_ALGS[jwk.crv] : undefined;
      return alg ? [alg] : [];
    }
    case 'OKP':
      return jwk.crv === 'Ed25519' ? EDDSA_ALGS : [];
    default:
      // Symmetric keys in a JWKS get no default: HMAC there has to be asked for by name.
      return [];
  }
}

export class JwtVerifier {
  readonly issuer: string | undefined;
  private readonly key: Uint8Array | KeyObject | JWTVerifyGetKey;
  private readonly algorithms: string[];
  private readonly cfg: JwtConfig;
  private readonly now: () => number;

  private constructor(cfg: JwtConfig, key: Uint8Array | KeyObject | JWTVerifyGetKey, defaultAlgs: string[], now: () => number) {
    const algorithms = cfg.algorithms ?? defaultAlgs;
    if (algorithms.length === 0) throw new Error('identity.jwt: no signing algorithm fits the configured key; list them in identity.jwt.algorithms');
    if (algorithms.some((a) => a.toLowerCase() === 'none')) throw new Error('identity.jwt.algorithms: `none` is never accepted');
    const hmac = algorithms.filter((a) => HMAC_ALGS.includes(a));
    if (cfg.key.kind === 'secret' && hmac.length !== algorithms.length) {
      throw new Error('identity.jwt.algorithms: a shared secret only verifies HS256/HS384/HS512');
    }
    if (cfg.key.kind === 'public_key' && hmac.length > 0) {
      throw new Error('identity.jwt.algorithms: a public key cannot verify HMAC (HS*) tokens');
    }
    this.cfg = cfg;
    this.issuer = cfg.issuer;
    this.key = key;
    this.algorithms = algorithms;
    this.now = now;
  }

  /** `now` (epoch milliseconds) exists for tests that need a token to expire without waiting. */
  static async create(cfg: JwtConfig, opts: { now?: () => number } = {}): Promise<JwtVerifier> {
    const source = cfg.key;
    const now = opts.now ?? Date.now;
    switch (source.kind) {
      case 'secret':
        return new JwtVerifier(cfg, new TextEncoder().encode(source.secret), HMAC_ALGS, now);
      case 'public_key': {
        if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(source.pem)) {
          throw new Error(`identity.jwt: ${source.file} holds a private key; give the public key or certificate`);
        }
        // KeyObject rather than importSPKI/importX509: it reads SPKI, PKCS#1 and certificate PEMs
        // alike and tells the key type, so the default allow-list can follow the key.
        const key = createPublicKey(source.pem);
        return new JwtVerifier(cfg, key, publicKeyAlgs(key), now);
      }
      case 'jwks': {
        const jwks = source.jwks as JSONWebKeySet;
        const getKey = createLocalJWKSet(jwks);
        const algs = new Set((Array.isArray(jwks.keys) ? jwks.keys : []).flatMap(jwkAlgs));
        return new JwtVerifier(cfg, getKey, [...algs], now);
      }
    }
  }

  /** Rejects with IdentityError; token_expired only when nothing but `exp` failed. */
  async verify(token: string): Promise<{ openid: string }> {
    return { openid: (await this.verifyWithClaims(token)).openid };
  }

  /** verify(), with the payload whose signature was checked. */
  async verifyWithClaims(token: string): Promise<{ openid: string; payload: JWTPayload }> {
    let payload: JWTPayload;
    try {
      const options = {
        algorithms: this.algorithms,
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        // A token without exp would be valid forever; the backend's tokens must carry one.
        requiredClaims: ['exp'],
        clockTolerance: this.cfg.clock_tolerance / 1000,
        currentDate: new Date(this.now()),
      };
      const key = this.key;
      ({ payload } = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options));
    } catch (err) {
      // jose checks the signature, iss and aud before exp, so JWTExpired means only exp failed;
      // a token without an openid would be refused when fresh, so it is invalid, not expired.
      if (err instanceof joseErrors.JWTExpired && this.openidOf(err.payload) !== undefined) {
        throw new IdentityError('token_expired', undefined, { cause: err });
      }
      throw new IdentityError('token_invalid', undefined, { cause: err });
    }
    const openid = this.openidOf(payload);
    if (openid === undefined) throw new IdentityError('token_invalid');
    return { openid, payload };
  }

  private openidOf(payload: JWTPayload): string | undefined {
    const value = payload[this.cfg.openid_claim];
    return typeof value === 'string' && value !== '' ? value : undefined;
  }
}
