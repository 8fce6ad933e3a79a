// Path normalisation: routing and forwarding both use the normalised form, so the route that
// decided on a request is the route whose upstream path the backend actually serves. Routes are
// then looked up on `matchKey` of that form, which folds what backends fold (case, a trailing
// `/`), so that a stricter route covers every spelling a backend would serve as the same resource.

export type NormalisedPath = { ok: true; path: string } | { ok: false; why: string };

/**
 * What `;` path parameters (`/a;jsessionid=1/b`, read by servlet containers as `/a/b`) do:
 * `reject` refuses the request, `strip` removes each `;…` up to the next `/` (for matching and
 * for the upstream alike), `keep` leaves them in place as part of the segment.
 */
export type SemicolonMode = 'reject' | 'strip' | 'keep';

// Characters that need no work at all; anything else sends the path down the slow lane.
const NEEDS_WORK = /[%\\;#]|\/\/|\/\.(?:\/|\.|$|;)|[. ](?:\/|$)/;

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** A segment IIS and Windows file systems would read without its trailing dots or spaces. */
function trailingDotOrSpace(seg: string): boolean {
  return seg.endsWith('.') || seg.endsWith('%20');
}

/**
 * Normalises the path part of a request target (no query string).
 * Unreserved percent-escapes are decoded, other escapes are kept with upper-case hex, `//` is
 * collapsed and `.`/`..` segments are resolved. Anything a backend could read in a second way is
 * refused: an encoded `/` or `\`, a raw `\`, NUL, a `..` above the root, `..;` dot segments with
 * path parameters (read as `..` by some servlet containers), raw `#`, and a segment ending in `.`
 * or a space (dropped by IIS). `semicolons` says what `;` (raw or `%3B`) does; the plain RFC 3986
 * reading, `keep`, is the default for callers that only ask whether a path is in normal form.
 */
export function normalisePath(raw: string, semicolons: SemicolonMode = 'keep'): NormalisedPath {
  if (raw.length === 0 || raw.charCodeAt(0) !== 47 /* / */) {
    return { ok: false, why: 'the path must start with "/"' };
  }
  if (!NEEDS_WORK.test(raw)) return { ok: true, path: raw };

  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch === '\\') return { ok: false, why: 'the path holds a backslash' };
    if (ch === '#') return { ok: false, why: 'the path holds a raw "#"' };
    if (ch !== '%') {
      decoded += ch;
      continue;
    }
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return { ok: false, why: 'the path holds an invalid percent-escape' };
    const code = hi * 16 + lo;
    if (code === 0) return { ok: false, why: 'the path holds an encoded NUL' };
    if (code === 0x2f) return { ok: false, why: 'the path holds an encoded "/"' };
    if (code === 0x5c) return { ok: false, why: 'the path holds an encoded "\\"' };
    // An encoded `;` is a parameter to whichever backend decodes before it splits: one meaning.
    if (code === 0x3b && semicolons !== 'keep') decoded += ';';
    else {
      const c = String.fromCharCode(code);
      decoded += UNRESERVED.test(c) ? c : '%' + raw.substr(i + 1, 2).toUpperCase();
    }
    i += 2;
  }
  if (semicolons === 'reject' && decoded.includes(';')) {
    return { ok: false, why: 'the path holds ";" path parameters, which some backends drop (server.paths.semicolons: reject)' };
  }

  const segments = decoded.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    let seg = segments[i]!;
    const semi = seg.indexOf(';');
    const bare = semi >= 0 ? seg.slice(0, semi) : seg;
    if (semi >= 0 && (bare === '.' || bare === '..')) {
      return { ok: false, why: 'the path holds a dot segment with parameters ("..;")' };
    }
    if (semicolons === 'strip') seg = bare;
    if (seg === '.' || (seg === '' && i !== last)) {
      if (i === last) out.push('');
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) return { ok: false, why: 'the path climbs above the root with ".."' };
      out.pop();
      if (i === last) out.push('');
      continue;
    }
    if (trailingDotOrSpace(bare) || trailingDotOrSpace(seg)) {
      return { ok: false, why: 'a path segment ends in "." or a space, which some backends drop' };
    }
    out.push(seg);
  }
  return { ok: true, path: '/' + out.join('/') };
}

// UTF-8 escapes of the non-ASCII letters that Java's equalsIgnoreCase and .NET's
// OrdinalIgnoreCase equate with ASCII ones: İ and ı with i, ſ with s, the Kelvin sign with k.
const FOLDS_TO_ASCII = /%c4%b[01]|%c5%bf|%e2%84%aa/g;
const ASCII_OF: Readonly<Record<string, string>> = { '%c4%b0': 'i', '%c4%b1': 'i', '%c5%bf': 's', '%e2%84%aa': 'k' };

/**
 * The key a normalised path is looked up by: folded as lenient backends fold it, so every
 * spelling they serve as one resource has one key. Case goes (IIS, ASP.NET, Express and Spring
 * route without it), and so does a trailing `/` (Express and Spring serve `/x/` as `/x`): `/x` and
 * `/x/` are one exact path, and one prefix covering `/x`, `/x/` and `/x/...`. Route paths are
 * folded the same way once, at compile.
 */
export function matchKey(path: string): string {
  let key = path.toLowerCase();
  if (key.includes('%')) key = key.replace(FOLDS_TO_ASCII, (m) => ASCII_OF[m]!);
  return key.length > 1 && key.charCodeAt(key.length - 1) === 47 /* / */ ? key.slice(0, -1) : key;
}

/** The next shorter prefix key that covers `key`: `/a/b` -> `/a` -> `/` -> undefined. */
export function parentPrefix(key: string): string | undefined {
  if (key === '/') return undefined;
  const cut = key.lastIndexOf('/');
  return cut <= 0 ? '/' : key.slice(0, cut);
}
