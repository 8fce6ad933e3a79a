// The access line's fields that take more than copying a value: who called (an HMAC of the
// verified openid, never the openid), what they said they run (a bounded user agent with control
// characters escaped), how they connected (TLS version and SNI) and how much they sent.
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { PolicyConfig } from '../types/policy.js';
import { BodyLimit } from './proxied.js';
import type { RequestState } from './request-state.js';

/** Longest user agent kept: WeChat's own is about 200 characters; anything longer is noise or an attack. */
export const USER_AGENT_MAX = 256;

const CONTROL = /[\x00-\x1f\x7f]/g;

function escapeControl(c: string): string {
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/** The client's User-Agent, at most USER_AGENT_MAX characters, each control character written as `\xNN`. */
export function userAgent(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  const bounded = value.length > USER_AGENT_MAX ? value.slice(0, USER_AGENT_MAX) : value;
  return bounded.replace(CONTROL, escapeControl);
}

export interface TlsSession {
  readonly version: string | undefined;
  readonly sni: string | undefined;
}

const PLAIN: TlsSession = { version: undefined, sni: undefined };
const sessions = new WeakMap<object, TlsSession>();

/**
 * The TLS version and the SNI name the client asked for; both undefined on plain HTTP. Read once
 * per connection, when its first request arrives: by the time a line is written the socket may be
 * closed and its TLS state gone.
 */
export function tlsOf(socket: Socket | null | undefined): TlsSession {
  const tls = socket as Partial<TLSSocket> | null | undefined;
  if (!tls || typeof tls.getProtocol !== 'function') return PLAIN;
  let session = sessions.get(tls);
  if (!session) {
    const servername = tls.servername;
    session = { version: tls.getProtocol() ?? undefined, sni: typeof servername === 'string' ? servername : undefined };
    sessions.set(tls, session);
  }
  return session;
}

/**
 * Request body bytes the gateway read from the client: counted for a body of no declared length,
 * its Content-Length once a declared body arrived whole, 0 when none was read (no body, or a
 * refusal that never read it). Undefined for a declared body the client did not finish.
 */
export function bytesIn(wx: RequestState): number | undefined {
  const body = wx.body;
  if (body instanceof BodyLimit) return body.seen;
  if (body !== wx.message) return 0;
  return wx.message.complete ? Number(wx.message.headers['content-length']) : undefined;
}

/** Hashes kept per key: a user's requests come in runs, and an HMAC costs more than the rest of the line. */
const HASHES_KEPT = 4096;

interface OpenidHasher {
  readonly key: KeyObject;
  /** openid -> its HMAC, oldest first; bounded by HASHES_KEPT. */
  readonly recent: Map<string, string>;
}

/** One hasher per policy load: the secret is turned into a KeyObject once, not per line. */
const hashers = new WeakMap<PolicyConfig['server']['log'], OpenidHasher>();

/**
 * HMAC-SHA256 of the verified openid under `server.log.openid_hmac_key`, in hex: the same user
 * gets the same value on every line (and after a reload with the same key), and without the key
 * nobody can tell who it is. Undefined without a verified openid or without a key: the line then
 * has no user field at all.
 */
export function openidHash(wx: RequestState): string | undefined {
  const openid = wx.openid;
  if (openid === undefined) return undefined;
  const log = wx.snapshot.policy.server.log;
  if (log.openid_hmac_key === undefined) return undefined;
  let hasher = hashers.get(log);
  if (!hasher) {
    hasher = { key: createSecretKey(Buffer.from(log.openid_hmac_key, 'utf8')), recent: new Map() };
    hashers.set(log, hasher);
  }
  let hash = hasher.recent.get(openid);
  if (hash === undefined) {
    hash = createHmac('sha256', hasher.key).update(openid, 'utf8').digest('hex');
    if (hasher.recent.size >= HASHES_KEPT) hasher.recent.delete(hasher.recent.keys().next().value!);
    hasher.recent.set(openid, hash);
  }
  return hash;
}
