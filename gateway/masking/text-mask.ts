// Masking an answer that is not JSON but that a mini-program may still read (wx.request hands
// such a body to the app as a string): HTML error pages, plain text, PHP's var_dump. There are no
// keys to follow, so the detectors look at every token. The body is read as latin1, one character
// per byte, so that whatever its charset (or if it is not text at all) every byte the detectors do
// not replace is passed unchanged; all the shapes they match are ASCII.
import type { MaskDetector } from '../types/policy.js';
import { detectInText } from './detectors.js';

/** The masked bytes, or undefined when no detector recognised anything. */
export function maskTextBuffer(detectors: readonly MaskDetector[], body: Buffer): Buffer | undefined {
  if (detectors.length === 0) return undefined;
  const masked = detectInText(detectors, body.toString('latin1'));
  return masked === undefined ? undefined : Buffer.from(masked, 'latin1');
}

// Characters a token can be made of, without the space (groups of digits can have single spaces
// or dashes between them, hence TRAILING below).
function isWord(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x2e || c === 0x25 || c === 0x5f || c === 0x2b || c === 0x40 || c === 0x2d;
}

/**
 * Where a run of digit groups that reaches `end` starts (`138 1234 `, `+86 `): what follows may
 * continue it. `end` when there is none. Scanned by hand: a regex anchored at the end would be
 * tried from every position.
 */
function digitRunStart(text: string, end: number): number {
  let k = end;
  while (k > 0) {
    const c = text.charCodeAt(k - 1);
    if ((c >= 0x30 && c <= 0x39) || c === 0x20 || c === 0x2d || c === 0x2b) k--;
    else break;
  }
  for (; k < end; k++) {
    const c = text.charCodeAt(k);
    if ((c >= 0x30 && c <= 0x39) || c === 0x2b) return k;
  }
  return end;
}
/** Held text past this many characters is let go but for its tail: no detector matches anything this long. */
const HOLD_MAX = 4096;
const HOLD_TAIL = 256;

/**
 * Masks text as it streams. A chunk's end may cut a token in two, so the text from where a token
 * could still be going on (a word, or a run of digit groups) is held back and examined with the
 * next chunk; what is held stays below HOLD_MAX characters.
 */
export class TextMasker {
  private carry = '';
  changed = false;

  constructor(private readonly detectors: readonly MaskDetector[]) {}

  write(chunk: Buffer): Buffer {
    const text = this.carry + chunk.toString('latin1');
    let cut = text.length;
    while (cut > 0 && isWord(text.charCodeAt(cut - 1))) cut--;
    // The word held may end a run of digit groups (`6222 0212 3456 7894.`): hold the run too.
    cut = digitRunStart(text, cut);
    if (text.length - cut > HOLD_MAX) {
      // A run this long is no token any detector matches; keep only enough to start the next one.
      const space = text.lastIndexOf(' ', text.length - HOLD_TAIL);
      cut = space > cut ? space : text.length - HOLD_TAIL;
    }
    this.carry = text.slice(cut);
    return this.masked(text.slice(0, cut));
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = '';
    return this.masked(rest);
  }

  private masked(text: string): Buffer {
    const out = detectInText(this.detectors, text);
    if (out === undefined) return Buffer.from(text, 'latin1');
    this.changed = true;
    return Buffer.from(out, 'latin1');
  }
}
