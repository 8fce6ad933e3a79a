// Path normalisation: routing and forwarding both use the normalised form, so the route that
// decided on a request is the route whose upstream path the backend actually serves.

export type NormalisedPath = { ok: true; path: string } | { ok: false; why: string };

// Characters that need no work at all; anything else sends the path down the slow lane.
const NEEDS_WORK = /[%\\;#]|\/\/|\/\.(?:\/|\.|$|;)/;

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Normalises the path part of a request target (no query string).
 * Unreserved percent-escapes are decoded, other escapes are kept with upper-case hex, `//` is
 * collapsed and `.`/`..` segments are resolved. Anything a backend could read in a second way is
 * refused: an encoded `/` or `\`, a raw `\`, NUL, a `..` above the root, `..;` dot segments with
 * path parameters (read as `..` by some servlet containers) and raw `#`.
 */
export function normalisePath(raw: string): NormalisedPath {
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
    const c = String.fromCharCode(code);
    decoded += UNRESERVED.test(c) ? c : '%' + raw.substr(i + 1, 2).toUpperCase();
    i += 2;
  }

  const segments = decoded.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const seg = segments[i]!;
    const semi = seg.indexOf(';');
    const bare = semi >= 0 ? seg.slice(0, semi) : seg;
    if (semi >= 0 && (bare === '.' || bare === '..')) {
      return { ok: false, why: 'the path holds a dot segment with parameters ("..;")' };
    }
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
    out.push(seg);
  }
  return { ok: true, path: '/' + out.join('/') };
}
