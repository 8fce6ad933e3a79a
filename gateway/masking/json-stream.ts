// Masking bodies too large to hold: the rewriter keeps only its container stack and the value it
// is deciding on, so memory does not grow with the body.
import { Transform } from 'node:stream';
import type { CompiledMask } from './compile.js';
import { MaskError, Rewriter } from './rewriter.js';
import { TextMasker } from './text-mask.js';

interface Masker {
  write(chunk: Buffer): Buffer;
  end(): Buffer;
}

/**
 * How a streamed body is read. `json`: as JSON, failing on anything else (the answer says it is
 * JSON). `sniff`: as JSON when its first byte after whitespace (and a BOM) opens an object or an
 * array, else as text for the detectors; a body that starts like JSON and turns out not to be
 * fails as JSON does, since what came before has been sent.
 */
export type StreamKind = 'json' | 'sniff';

const BOM = [0xef, 0xbb, 0xbf];
const SNIFF_LIMIT = 1024 * 1024;

/** Decides once enough has arrived, then passes every byte, held ones first, to the chosen masker. */
class Sniffer implements Masker {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private inner: Masker | undefined;

  constructor(private readonly mask: CompiledMask) {}

  write(chunk: Buffer): Buffer {
    if (this.inner) return this.inner.write(chunk);
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    // A megabyte of whitespace opens no JSON worth the wait: read the rest as text.
    if (this.heldBytes > SNIFF_LIMIT) return this.choose(new TextMasker(this.mask.detectors));
    const start = this.heldBytes - chunk.length;
    for (let k = 0; k < chunk.length; k++) {
      const b = chunk[k]!;
      if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09 || (start + k < BOM.length && b === BOM[start + k])) continue;
      return this.choose(b === 0x7b || b === 0x5b ? new Rewriter(this.mask) : new TextMasker(this.mask.detectors));
    }
    return Buffer.alloc(0);
  }

  private choose(inner: Masker): Buffer {
    this.inner = inner;
    const all = Buffer.concat(this.held);
    this.held = [];
    return inner.write(all);
  }

  end(): Buffer {
    if (this.inner) return this.inner.end();
    // Whitespace only: nothing a detector could match.
    return Buffer.concat(this.held);
  }
}

/**
 * A Transform from body bytes to masked bytes. Invalid JSON destroys it with a MaskError;
 * everything emitted before that point was already masked. Undecided bytes are held back, so a
 * chunk of input may produce no output yet.
 */
export function createMaskStream(mask: CompiledMask, kind: StreamKind = 'json'): Transform {
  const masker: Masker = kind === 'json' ? new Rewriter(mask) : new Sniffer(mask);
  return new Transform({
    transform(chunk: Buffer | string, _enc, cb) {
      try {
        const out = masker.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        cb(null, out.length > 0 ? out : undefined);
      } catch (err) {
        cb(err instanceof MaskError ? err : new MaskError('the masker failed'));
      }
    },
    flush(cb) {
      try {
        const out = masker.end();
        cb(null, out.length > 0 ? out : undefined);
      } catch (err) {
        cb(err instanceof MaskError ? err : new MaskError('the masker failed'));
      }
    },
  });
}
