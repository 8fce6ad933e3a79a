// The access_token protocol: how wxgw asks for the token (stable_token), what WeChat's answers
// and errcodes mean for a call made with it, and the answer shape legacy code expects from
// /cgi-bin/token. Plain data; the egress listener does the I/O.

/**
 * errcodes that say the token a call carried is not (or no longer) valid: 40001 invalid
 * credential, 40014 invalid access_token, 42001 access_token expired. WeChat refused such a call
 * before acting on it, so it may be repeated with a new token.
 */
export const TOKEN_ERRCODES: ReadonlySet<number> = new Set([40001, 40014, 42001]);

/**
 * errcodes that open an API's circuit: -1 system busy, 45009 daily quota reached, 45011 API
 * called too often. Calling again at once only earns the same answer.
 */
export const CIRCUIT_ERRCODES: ReadonlySet<number> = new Set([-1, 45009, 45011]);

/** Paths whose answer is a token: answered by wxgw from its cache, never forwarded. */
export const TOKEN_PATHS: ReadonlySet<string> = new Set(['/cgi-bin/token', '/cgi-bin/stable_token']);

/** The body of `POST /cgi-bin/stable_token`. Without force_refresh, a token stays valid when anyone else forces a new one. */
export function stableTokenRequest(appid: string, secret: string, forceRefresh = false): string {
  return JSON.stringify({ grant_type: 'client_credential', appid, secret, force_refresh: forceRefresh });
}

export interface IssuedToken {
  readonly token: string;
  /** Epoch milliseconds the token stops being valid, as WeChat's expires_in said at `now`. */
  readonly expiresAt: number;
}

/** The token in a stable_token answer, or the errcode it carries instead. */
export function readTokenAnswer(answer: unknown, now: number): IssuedToken | { errcode: number; errmsg: string } {
  if (typeof answer !== 'object' || answer === null) return { errcode: -2, errmsg: 'not a JSON object' };
  const a = answer as Record<string, unknown>;
  const errcode = errcodeOf(a);
  if (errcode !== 0) return { errcode, errmsg: typeof a.errmsg === 'string' ? a.errmsg.slice(0, 200) : '' };
  if (typeof a.access_token !== 'string' || a.access_token === '' || typeof a.expires_in !== 'number' || !(a.expires_in > 0)) {
    return { errcode: -2, errmsg: 'answer without access_token and expires_in' };
  }
  return { token: a.access_token, expiresAt: now + a.expires_in * 1000 };
}

/** WeChat's errcode in an answer: 0 when absent; a number sent as a string is read too. */
export function errcodeOf(answer: Record<string, unknown>): number {
  const e = answer.errcode;
  if (typeof e === 'number' && Number.isInteger(e)) return e;
  if (typeof e === 'string' && /^-?\d+$/.test(e)) return Number(e);
  return 0;
}

/** What /cgi-bin/token and /cgi-bin/stable_token answer: the cached token with its remaining whole seconds. */
export function tokenAnswer(t: IssuedToken, now: number): string {
  return JSON.stringify({ access_token: t.token, expires_in: Math.max(0, Math.floor((t.expiresAt - now) / 1000)) });
}

/** A WeChat-shaped refusal, for SDKs that read errcode before anything else. */
export function errcodeAnswer(errcode: number, errmsg: string): string {
  return JSON.stringify({ errcode, errmsg });
}
