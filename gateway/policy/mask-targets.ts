// Masking rule targets as written in the policy: a bare key name, masked wherever it appears, or
// a path from the document root, for names too common to mask everywhere.
// Path grammar: `$` then segments `.name`, `.*` (any member), `[*]` (any element) or `["name"]`.

import type { Parsed } from './units.js';
import type { MaskTarget } from '../types/policy.js';

const SEGMENT = /^(?:\.([^.[\]"*][^.[\]"]*)|\.\*|\[\*\]|\["((?:[^"\\]|\\.)+)"\])/;

export function parseMaskTarget(text: string): Parsed<MaskTarget> {
  if (!text.startsWith('$')) return { ok: true, value: { kind: 'key', key: text } };
  const path: string[] = [];
  let rest = text.slice(1);
  if (rest === '') return { ok: false, why: 'is the whole document; name at least one key after `$`, e.g. $.data.phone' };
  while (rest !== '') {
    const m = SEGMENT.exec(rest);
    if (!m) {
      const hint = /^\[\d+\]/.test(rest) ? 'array positions are not supported, use [*] for every element' : 'expected .name, .*, [*] or ["name"]';
      return { ok: false, why: `cannot be read as a path at \`${rest.slice(0, 20)}\`: ${hint}` };
    }
    path.push(m[1] ?? (m[2] !== undefined ? JSON.parse(`"${m[2]}"`) : '*'));
    rest = rest.slice(m[0].length);
  }
  return { ok: true, value: { kind: 'path', path, text } };
}
