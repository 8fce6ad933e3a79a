// Turns a proxied request's headers into a verified openid, or a refusal. What to do with each
// outcome (401 on identity_required routes, stripping a client-sent openid header, setting the
// verified one) belongs to the server wiring; this module only decides who the caller is.
import type { IncomingHttpHeaders } from 'node:http';
import { decodeJwt } from 'jose';
import type { IdentityConfig } from '../types/policy.js';
import { IdentityError, type TokenRefusal } from './identity-error.js';
import { JwtVerifier } from './jwt-verifier.js';
import { SessionSigner } from './session-token.js';
import type { Revocation, SessionRef } from './sessions.js';

/**
 * `claims`: the verified token's values of the claims the policy selects by (compileIdentity's
 * `claims`), present only when it names some; a claim the token lacks is absent from it.
 */
export type IdentityOutcome =
  | { kind: 'none' }
  | { kind: 'verified'; openid: string; claims?: VerifiedClaims }
  | { kind: 'refused'; reason: TokenRefusal };

/** Claims of a token whose signature verified, frozen: nothing a client sent beside the token. */
export type VerifiedClaims = Readonly<Record<string, unknown>>;

export interface IdentityVerifier {
  /** Lower-case header that carries the verified openid to the upstream. */
  readonly upstreamHeader: string;
  verify(headers: IncomingHttpHeaders): Promise<IdentityOutcome>;
  /**
   * verify() in two steps: settled at once for no token or a token already verified, otherwise
   * `pending` with the check still to run, so the caller can count the request before paying for it.
   */
  identify(headers: IncomingHttpHeaders): IdentityOutcome | Deferred;
  /**
   * The wxgw session behind the request's token, for the gateway's own endpoints (decrypt,
   * logout) after the route's guards verified it; undefined for no token or another issuer's.
   * Checks the signature (usually from the cache), not revocation: the guard did that.
   */
  session(headers: IncomingHttpHeaders): Promise<SessionRef | undefined>;
}

/**
 * An outcome still to be found: `pending` costs a signature check (the caller may count the request
 * first), `checking` is a token already verified whose revocation is still to be looked up.
 */
export type Deferred = { kind: 'pending'; check(): Promise<IdentityOutcome> } | { kind: 'checking'; check(): Promise<IdentityOutcome> };

type Extracted = { kind: 'none' } | { kind: 'token'; token: string } | { kind: 'malformed' };

/** Longer than any sane JWT; bounds the work an attacker can make the verifier do. */
const MAX_TOKEN = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function single(value: string | string[] | undefined): string | undefined | null {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : value.length === 0 ? undefined : null;
  return value;
}

function fromAuthorization(value: string | undefined): Extracted {
  if (value === undefined || value.trim() === '') return { kind: 'none' };
  const [scheme, ...rest] = value.trim().split(/\s+/);
  // Another scheme (Basic, ...) is not an identity claim: the request is simply anonymous.
  if (scheme!.toLowerCase() !== 'bearer') return { kind: 'none' };
  return rest.length === 1 ? { kind: 'token', token: rest[0]! } : { kind: 'malformed' };
}

function fromHeader(value: string | undefined): Extracted {
  if (value === undefined || value.trim() === '') return { kind: 'none' };
  return { kind: 'token', token: value.trim() };
}

function fromCookie(header: string | undefined, name: string): Extracted {
  if (header === undefined) return { kind: 'none' };
  const values = new Set<string>();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value !== '') values.add(value);
  }
  if (values.size === 0) return { kind: 'none' };
  // Two different cookies of that name (e.g. set for two paths): which one is meant is a guess.
  return values.size === 1 ? { kind: 'token', token: [...values][0]! } : { kind: 'malformed' };
}

function extractToken(headers: IncomingHttpHeaders, source: IdentityConfig['token']): Extracted {
  if ('cookie' in source) {
    const cookie = single(headers.cookie);
    return cookie === null ? { kind: 'malformed' } : fromCookie(cookie, source.cookie);
  }
  const name = source.header.toLowerCase();
  const value = single(headers[name]);
  if (value === null) return { kind: 'malformed' };
  return name === 'authorization' ? fromAuthorization(value) : fromHeader(value);
}

/**
 * Tokens whose signature already verified, with their openid and expiry: a client sends the same
 * token with every request, and an HMAC or RSA check through WebCrypto costs more than the rest
 * of a proxied request. Only verified tokens enter, each until its own `exp`, so the cache admits
 * exactly what the verifier would; revocation is checked beside it, on every request.
 * Bounded: past the limit the oldest entry goes.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, CachedToken>();

  constructor(private readonly limit: number) {}

  get(token: string, now: number): CachedToken | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (now < entry.expiresAt) return entry;
    this.entries.delete(token);
    return undefined;
  }

  add(token: string, entry: CachedToken): void {
    if (this.entries.size >= this.limit) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, entry);
  }
}

/** `session`: set for wxgw's own session tokens, which a logout can revoke. */
interface CachedToken {
  outcome: Verified;
  expiresAt: number;
  session?: SessionRef;
}

type Verified = Extract<IdentityOutcome, { kind: 'verified' }>;

const REVOKED: IdentityOutcome = Object.freeze({ kind: 'refused', reason: 'session_revoked' });

/** About 3 MB of tokens: far more distinct users than one instance sees within a token's life. */
const VERIFIED_TOKENS = 10_000;

interface Candidate {
  issuer: string | undefined;
  /**
   * `payload`: the verified claims, for tokens that may carry the ones the policy selects by.
   * `notAfter`: an end earlier than `exp` (a token a rotated-out key verified, see session-token.ts).
   */
  verify(token: string): Promise<{ openid: string; payload?: Readonly<Record<string, unknown>>; notAfter?: number; session?: SessionRef }>;
}

/**
 * `now` (epoch milliseconds) exists for tests that need a token to expire without waiting.
 * `claims`: the claims the policy selects by (a route's `mask: { by: claim.role }`); verified
 * outcomes carry those and no others. `revocation` (with `identity.logout`): every request with
 * a wxgw session token costs its one store get, cached signature or not.
 */
export async function compileIdentity(
  cfg: IdentityConfig,
  deps: { signer?: SessionSigner; now?: () => number; claims?: readonly string[]; revocation?: Revocation },
): Promise<IdentityVerifier> {
  const now = deps.now ?? Date.now;
  const candidates: Candidate[] = [];
  const signer = deps.signer ?? (cfg.session ? await SessionSigner.create(cfg.session, { now }) : undefined);
  // wxgw's own session tokens carry no claim of the backend's (no role): selecting by a claim
  // finds none in them, and they get the strictest choice.
  if (signer) {
    candidates.push({
      issuer: signer.issuer,
      verify: async (t) => {
        const { openid, sid, iat, notAfter } = await signer.verify(t);
        const session = { openid, sid, iat };
        return notAfter === undefined ? { openid, session } : { openid, notAfter, session };
      },
    });
  }
  if (cfg.jwt) {
    const jwt = await JwtVerifier.create(cfg.jwt, { now });
    candidates.push({ issuer: jwt.issuer, verify: (t) => jwt.verifyWithClaims(t) });
  }
  const named = deps.claims ?? [];

  const outcomeOf = (openid: string, payload: Readonly<Record<string, unknown>> | undefined): Verified => {
    if (named.length === 0) return { kind: 'verified', openid };
    // No prototype: a claim named `__proto__` or `constructor` is a value like any other.
    const claims: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const name of named) if (payload && Object.hasOwn(payload, name)) claims[name] = payload[name];
    return { kind: 'verified', openid, claims: Object.freeze(claims) };
  };

  // The unverified `iss` only rules out keys whose issuer check would fail anyway; nothing is
  // believed before a signature check.
  function eligible(iss: unknown): Candidate[] {
    return candidates.filter((c) => c.issuer === undefined || c.issuer === iss);
  }

  const verified = new VerifiedTokens(VERIFIED_TOKENS);
  const revocation = deps.revocation;

  /** The outcome, unless a logout revoked the session since. */
  async function unlessRevoked(entry: CachedToken): Promise<IdentityOutcome> {
    return entry.session && (await revocation!.revoked(entry.session)) ? REVOKED : entry.outcome;
  }

  function identify(headers: IncomingHttpHeaders): IdentityOutcome | Deferred {
    const found = extractToken(headers, cfg.token);
    if (found.kind === 'none') return found;
    if (found.kind === 'token') {
      const known = verified.get(found.token, now());
      if (known !== undefined) {
        // A signature already verified: only the revocation get is left, which a made-up token never reaches.
        return revocation && known.session ? { kind: 'checking', check: () => unlessRevoked(known) } : known.outcome;
      }
    }
    return { kind: 'pending', check: () => check(found) };
  }

  async function check(found: Extracted): Promise<IdentityOutcome> {
    const entry = await verifiedEntry(found);
    if (!('outcome' in entry)) return entry;
    return revocation ? unlessRevoked(entry) : entry.outcome;
  }

  async function verifiedEntry(found: Extracted): Promise<CachedToken | Extract<IdentityOutcome, { kind: 'refused' }>> {
    if (found.kind !== 'token' || found.token.length > MAX_TOKEN || !COMPACT_JWS.test(found.token)) {
      return { kind: 'refused', reason: 'token_invalid' };
    }
    let claims: { iss?: unknown; exp?: unknown };
    try {
      claims = decodeJwt(found.token);
    } catch {
      return { kind: 'refused', reason: 'token_invalid' };
    }
    let reason: TokenRefusal = 'token_invalid';
    for (const candidate of eligible(claims.iss)) {
      try {
        const { openid, payload, notAfter, session } = await candidate.verify(found.token);
        const entry: CachedToken = { outcome: outcomeOf(openid, payload), expiresAt: Infinity, ...(session && { session }) };
        // Cached until `exp` itself, without the clock tolerance: an entry can only end early.
        if (typeof claims.exp === 'number') {
          entry.expiresAt = Math.min(claims.exp * 1000, notAfter ?? Infinity);
          verified.add(found.token, entry);
        }
        return entry;
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
        if (err.reason === 'token_expired') reason = 'token_expired';
      }
    }
    return { kind: 'refused', reason };
  }

  async function verify(headers: IncomingHttpHeaders): Promise<IdentityOutcome> {
    const outcome = identify(headers);
    return outcome.kind === 'pending' || outcome.kind === 'checking' ? outcome.check() : outcome;
  }

  async function session(headers: IncomingHttpHeaders): Promise<SessionRef | undefined> {
    const found = extractToken(headers, cfg.token);
    if (found.kind !== 'token') return undefined;
    const entry = verified.get(found.token, now()) ?? (await verifiedEntry(found));
    return 'session' in entry ? entry.session : undefined;
  }

  return { upstreamHeader: cfg.upstream_header, verify, identify, session };
}
