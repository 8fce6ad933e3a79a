// What a mask profile does to an answer's headers: a backend that puts the session key in a
// header or a cookie leaks it as surely as in the body. Compiled once per profile; per answer it
// is one pass over the header names.
//
// - Headers listed in `headers.drop` are removed (names compared as key names are).
// - A header named like a key rule, with or without an `X-` prefix (`Session-Key`,
//   `X-Session-Key`), gets that rule: dropped, or its value replaced, hashed or partly hidden.
// - A `Set-Cookie` line whose cookie name is a key rule's name or in `headers.drop_cookies` is
//   removed whole: a masked cookie value would only plant a broken cookie in the client.
// The headers that frame the body (and the gateway's own X-Request-Id) are never touched.
import type { MaskHeadersConfig } from '../types/policy.js';
import type { MaskAction } from './compile.js';
import { applyAction } from './values.js';

export type Headers = Record<string, string | string[] | undefined>;

/** Headers the answer cannot do without: a policy may not drop them (features.ts refuses it). */
export const FRAMING_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-length', 'transfer-encoding', 'content-encoding', 'x-request-id']);

export interface HeaderMask {
  /** Canonical names of headers removed outright. */
  readonly drop: ReadonlySet<string>;
  /** Canonical names: a header named like one (less an `x-` prefix) gets its action. */
  readonly byKey: ReadonlyMap<string, MaskAction>;
  /** Canonical cookie names whose Set-Cookie lines are removed. */
  readonly cookies: ReadonlySet<string>;
  readonly canon: (name: string) => string;
  /** False when nothing can apply: answers pass without a look at their headers. */
  readonly active: boolean;
}

/**
 * `keyRules`: the profile's key rules by canonical name. `byHeader`: the same by lower-case
 * canonical name (header names arrive in lower case; cookie names are case-sensitive).
 */
export function compileHeaderMask(
  cfg: MaskHeadersConfig | undefined,
  keyRules: ReadonlyMap<string, MaskAction>,
  byHeader: ReadonlyMap<string, MaskAction>,
  canon: (name: string) => string,
): HeaderMask {
  const drop = new Set((cfg?.drop ?? []).map((h) => canon(h.toLowerCase())));
  const cookies = new Set([...(cfg?.drop_cookies ?? []).map(canon), ...keyRules.keys()]);
  return { drop, byKey: byHeader, cookies, canon: remembered(canon), active: drop.size > 0 || byHeader.size > 0 || cookies.size > 0 };
}

/** Names folded before: a backend sends the same few header and cookie names on every answer. */
const REMEMBERED_NAMES = 1024;

function remembered(canon: (name: string) => string): (name: string) => string {
  const seen = new Map<string, string>();
  return (name) => {
    let folded = seen.get(name);
    if (folded === undefined) {
      folded = canon(name);
      // Bounded: names come from the backend, and a backend may make them up.
      if (seen.size < REMEMBERED_NAMES) seen.set(name, folded);
    }
    return folded;
  };
}

const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

function cookieName(line: string): string {
  const eq = line.indexOf('=');
  return (eq < 0 ? line : line.slice(0, eq)).trim();
}

function keptCookies(hm: HeaderMask, value: string | string[]): string | string[] | undefined {
  const lines = Array.isArray(value) ? value : [value];
  const kept = lines.filter((line) => !hm.cookies.has(hm.canon(cookieName(line))));
  if (kept.length === lines.length) return value;
  return kept.length === 0 ? undefined : kept;
}

/** `headers` as the profile lets them out: the same object when nothing applies, else a copy. */
export function maskHeaders(hm: HeaderMask, headers: Headers, hashKey: string | undefined): Headers {
  if (!hm.active) return headers;
  let out: Headers | undefined;
  const set = (name: string, value: string | string[] | undefined): void => {
    out ??= { ...headers };
    if (value === undefined) delete out[name];
    else out[name] = value;
  };
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || FRAMING_HEADERS.has(name)) continue;
    const folded = hm.canon(name);
    if (hm.drop.has(folded)) {
      set(name, undefined);
      continue;
    }
    if (name === 'set-cookie') {
      const kept = keptCookies(hm, value);
      if (kept !== value) set(name, kept);
      continue;
    }
    const action = hm.byKey.get(name.startsWith('x-') ? hm.canon(name.slice(2)) : folded);
    if (action === undefined) continue;
    if (action.kind === 'drop') {
      set(name, undefined);
      continue;
    }
    const masked = (Array.isArray(value) ? value : [value]).map((v) => applyAction(action, v, hashKey));
    // A `replace` text need not be a valid header value (non-ASCII, line breaks): then the
    // header goes, rather than the answer failing on the way out.
    set(name, masked.some((v) => !HEADER_VALUE.test(v)) ? undefined : Array.isArray(value) ? masked : masked[0]);
  }
  return out ?? headers;
}
