// The server side of a login session, in the store: the record login writes (session_key, openid,
// unionid) under the token's `sid`, and the marks a logout leaves so that every instance sharing
// the store refuses the token before its `exp`.
//
// Revocation (`identity.logout`) costs one store get per request carrying a wxgw session token,
// and only when the policy has a logout endpoint:
//   scope session: `revoked:<sid>` exists            -> that one token is refused
//   scope user:    `nbf:<openid>` >= the token's iat -> every token the user had is refused
// One key per check, so each check is a single GET in one hash slot (Redis Cluster included).
import type { Store } from '../store/store.js';

export interface SessionRecord {
  session_key: string;
  openid: string;
  unionid?: string;
}

export function sessionRecordKey(sid: string): string {
  return `session:${sid}`;
}

/** The record as stored: the raw value too, so that a logout can delete exactly it. */
export async function readSession(store: Store, sid: string): Promise<{ record: SessionRecord; raw: string } | undefined> {
  const raw = await store.get(sessionRecordKey(sid));
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const r = parsed as Partial<SessionRecord> | null;
  if (typeof r?.session_key !== 'string' || typeof r.openid !== 'string') return undefined;
  return { record: { session_key: r.session_key, openid: r.openid, ...(typeof r.unionid === 'string' && { unionid: r.unionid }) }, raw };
}

export type RevocationScope = 'session' | 'user';

/** A verified wxgw session token, as much of it as revocation looks at. */
export interface SessionRef {
  openid: string;
  sid: string;
  /** `iat`, epoch seconds. */
  iat: number;
}

export interface Revocation {
  readonly scope: RevocationScope;
  /** true when a logout ended this token; rejects with StoreUnavailableError. */
  revoked(ref: SessionRef): Promise<boolean>;
  /** Ends the token (scope session) or every token of its user (scope user), and deletes its session_key. */
  logout(ref: SessionRef): Promise<void>;
}

/**
 * `ttl`: identity.session.ttl, the longest any token lives: a mark outliving it would refuse
 * nothing more. `now`: epoch milliseconds.
 */
export function compileRevocation(store: Store, scope: RevocationScope, ttl: number, now: () => number): Revocation {
  return {
    scope,
    async revoked(ref) {
      if (scope === 'session') return (await store.get(`revoked:${ref.sid}`)) !== undefined;
      const nbf = await store.get(`nbf:${ref.openid}`);
      // JWT times are whole seconds: a token signed in the same second as the logout, before or
      // after it, is refused too (the user logs in once more).
      return nbf !== undefined && ref.iat * 1000 <= Number(nbf);
    },
    async logout(ref) {
      // The mark first: once the token is refused, its session_key is of no use to anyone.
      if (scope === 'session') await store.put(`revoked:${ref.sid}`, '1', ttl);
      else await store.put(`nbf:${ref.openid}`, String(now()), ttl);
      const held = await readSession(store, ref.sid);
      // Compare and delete: the record goes, whatever instance wrote it.
      if (held) await store.release(sessionRecordKey(ref.sid), held.raw);
    },
  };
}
