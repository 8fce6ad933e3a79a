// Whether a route's path can ever match. Requests are routed on their normalised path
// (net/path.ts), without query string or fragment, with everything outside RFC 3986's path
// characters percent-encoded; a policy path that no normalised path can equal or start with
// (at a segment boundary) would be a route that silently never fires.

import { normalisePath } from '../net/path.js';

/** Characters a request path may hold as they are; anything else arrives percent-encoded. */
const NOT_PATH_CHAR = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/gu;

/** Why no request can match `path`, or undefined when it is a path in normal form. */
export function neverMatches(path: string): string | undefined {
  if (!path.startsWith('/')) return 'does not start with `/`, as every request path does';
  if (path.includes('?')) return 'holds `?`: routes match the path alone, the query string is never part of it';
  if (path.includes('#')) return 'holds `#`: clients never send the fragment';
  const raw = path.match(NOT_PATH_CHAR);
  if (raw) {
    const encoded = path.replace(NOT_PATH_CHAR, (c) => encodeURIComponent(c));
    return `holds ${[...new Set(raw)].map((c) => `\`${c}\``).join(', ')}, which clients send percent-encoded; write \`${encoded}\``;
  }
  const normal = normalisePath(path);
  if (!normal.ok) return `can never match: ${normal.why}, and such requests are refused`;
  if (normal.path !== path) {
    return `can never match: requests are matched on their normalised path, and this one normalises to \`${normal.path}\``;
  }
  return undefined;
}
