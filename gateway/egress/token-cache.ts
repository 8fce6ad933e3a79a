// One access_token for every instance. The token lives in the store (Redis, shared) with its
// expiry and the moment it should be renewed; each instance keeps the last one it saw. A renewal
// is done by exactly one instance: whoever claims the store lock asks WeChat (stable_token,
// without force_refresh), writes the answer and releases; the others poll the store with backoff
// until the new token is there, and keep serving the old one while it is still valid. Within an
// instance, concurrent renewals share one flight.
//
// When to renew: in stable_token's normal mode WeChat hands out a new token only in the last five
// minutes of the old one's life (and keeps the old one valid until its end), so the renewal is due
// four minutes before expiry: earlier would just get the same token back.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { Store } from '../store/store.js';
import type { IssuedToken } from '../wechat/access-token.js';
import type { RefreshResult } from './metrics.js';

/** The token as the store holds it: when it dies and when it is due for renewal (epoch ms). */
export interface CachedToken extends IssuedToken {
  readonly refreshAt: number;
}

export interface TokenCacheDeps {
  readonly store: Store;
  readonly appid: string;
  readonly now: () => number;
  /** Asks WeChat for the token (POST /cgi-bin/stable_token); throws TokenUnavailableError. */
  readonly fetch: (forceRefresh: boolean) => Promise<IssuedToken>;
  /** How long one renewal may hold the lock: past it another instance may take over. */
  readonly lockTtlMs: number;
  readonly logger: Logger;
  readonly refreshed: (result: RefreshResult) => void;
}

/** The token could not be had: WeChat refused or did not answer, or the store was unreachable. */
export class TokenUnavailableError extends Error {
  override readonly name = 'TokenUnavailableError';
  /** WeChat's errcode when it refused (40013 bad appid, 40125 bad secret, ...). */
  constructor(
    message: string,
    readonly errcode?: number,
  ) {
    super(message);
  }
}

/** Renew this long before expiry: inside WeChat's five-minute window for a new token. */
const RENEW_AHEAD_MS = 4 * 60_000;
/** A token renewed to itself (asked too early) is asked for again no sooner than this. */
const MIN_RENEW_GAP_MS = 30_000;
/** The old token is not served in its last seconds: a call made with it may arrive after its end. */
const EXPIRY_MARGIN_MS = 10_000;
/** After WeChat refused or did not answer, renewals pause this long (doubling to the maximum), so a wrong secret is not asked about at the rate of calls. */
const FAILURE_PAUSE_MS = 2000;
const FAILURE_PAUSE_MAX_MS = 60_000;
const POLL_FIRST_MS = 20;
const POLL_MAX_MS = 500;

export function renewPoint(t: IssuedToken, now: number): number {
  const lifetime = t.expiresAt - now;
  const ahead = Math.min(RENEW_AHEAD_MS, lifetime / 4);
  return Math.max(t.expiresAt - ahead, Math.min(now + MIN_RENEW_GAP_MS, t.expiresAt - EXPIRY_MARGIN_MS));
}

function parse(raw: string | undefined): CachedToken | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as CachedToken;
    return typeof v.token === 'string' && typeof v.expiresAt === 'number' && typeof v.refreshAt === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

export class TokenCache {
  private current: CachedToken | undefined;
  /** Renewals in flight by the token they replace ('' for a scheduled one). */
  private readonly flights = new Map<string, Promise<CachedToken>>();
  private readonly holder = randomBytes(8).toString('hex');
  private readonly key: string;
  private readonly lockKey: string;
  private pausedUntil = 0;
  private pauseMs = FAILURE_PAUSE_MS;

  constructor(private readonly deps: TokenCacheDeps) {
    this.key = `wxtoken:${deps.appid}`;
    this.lockKey = `wxtoken-lock:${deps.appid}`;
  }

  /** A valid token: the cached one, renewed in the background when due, or a new one when none is valid. */
  async token(): Promise<CachedToken> {
    const now = this.deps.now();
    const c = this.current;
    if (c && now < c.refreshAt) return c;
    if (c && now < c.expiresAt - EXPIRY_MARGIN_MS) {
      this.renew('').catch((err: unknown) => this.deps.logger.warn({ appid: this.deps.appid, err: (err as Error).message }, 'access_token renewal failed; serving the current token until it expires'));
      return c;
    }
    return this.renew('');
  }

  /**
   * WeChat rejected `failed` (40001/40014/42001): a token other than it, renewed once across the
   * instance however many calls failed with it.
   */
  replace(failed: string): Promise<CachedToken> {
    return this.renew(failed);
  }

  private renew(failed: string): Promise<CachedToken> {
    if (this.deps.now() < this.pausedUntil) return Promise.reject(new TokenUnavailableError('the last access_token request failed; the next is due after a pause'));
    let flight = this.flights.get(failed);
    if (!flight) {
      flight = this.run(failed).finally(() => this.flights.delete(failed));
      this.flights.set(failed, flight);
    }
    return flight;
  }

  /** Whether a stored token serves: not the one that failed, or not yet due. */
  private usable(t: CachedToken | undefined, failed: string): t is CachedToken {
    if (!t) return false;
    const now = this.deps.now();
    return failed !== '' ? t.token !== failed && now < t.expiresAt - EXPIRY_MARGIN_MS : now < t.refreshAt;
  }

  private async run(failed: string): Promise<CachedToken> {
    const { store, lockTtlMs } = this.deps;
    // Waiting is bounded by the lock: past its TTL a crashed holder's lock is gone and this instance takes over.
    const deadline = Date.now() + 2 * lockTtlMs;
    let delay = POLL_FIRST_MS;
    let waited = false;
    for (;;) {
      const stored = parse(await store.get(this.key));
      if (this.usable(stored, failed)) {
        if (waited) this.deps.refreshed('waited');
        return (this.current = stored);
      }
      if (await store.claim(this.lockKey, lockTtlMs, this.holder)) {
        try {
          return await this.fetchUnderLock(failed);
        } finally {
          await store.release(this.lockKey, this.holder).catch(() => undefined);
        }
      }
      waited = true;
      if (Date.now() + delay > deadline) throw new TokenUnavailableError('another instance is renewing the access_token and has not stored it in time');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  private async fetchUnderLock(failed: string): Promise<CachedToken> {
    const { store, fetch, now } = this.deps;
    // Another instance may have renewed between our read and our claim.
    const again = parse(await store.get(this.key));
    if (this.usable(again, failed)) return (this.current = again);
    let issued: IssuedToken;
    let result: RefreshResult = 'ok';
    try {
      issued = await fetch(false);
      // Still the token WeChat just refused: only a forced refresh gets another (20 a day, so never otherwise).
      if (failed !== '' && issued.token === failed) {
        issued = await fetch(true);
        result = 'forced';
      }
    } catch (err) {
      this.deps.refreshed('error');
      this.pausedUntil = now() + this.pauseMs;
      this.pauseMs = Math.min(this.pauseMs * 2, FAILURE_PAUSE_MAX_MS);
      throw err;
    }
    this.pauseMs = FAILURE_PAUSE_MS;
    const t = now();
    const cached: CachedToken = { token: issued.token, expiresAt: issued.expiresAt, refreshAt: renewPoint(issued, t) };
    await store.put(this.key, JSON.stringify(cached), Math.max(1, cached.expiresAt - t));
    this.deps.refreshed(result);
    this.deps.logger.info({ appid: this.deps.appid, expires_in_s: Math.round((cached.expiresAt - t) / 1000), forced: result === 'forced' }, 'access_token renewed');
    return (this.current = cached);
  }
}
