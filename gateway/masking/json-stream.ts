// Masking bodies too large to hold: the rewriter keeps only its container stack and the value it
// is deciding on, so memory does not grow with the body.
import { Transform } from 'node:stream';
import type { CompiledMask } from './compile.js';
import { MaskError, Rewriter } from './rewriter.js';

/**
 * A Transform from JSON bytes to masked JSON bytes. Invalid JSON destroys it with a MaskError;
 * everything emitted before that point was already masked. Undecided bytes are held back, so a
 * chunk of input may produce no output yet.
 */
export function createMaskStream(mask: CompiledMask): Transform {
  const rw = new Rewriter(mask);
  return new Transform({
    transform(chunk: Buffer | string, _enc, cb) {
      try {
        const out = rw.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        cb(null, out.length > 0 ? out : undefined);
      } catch (err) {
        cb(err instanceof MaskError ? err : new MaskError('the masker failed'));
      }
    },
    flush(cb) {
      try {
        const out = rw.end();
        cb(null, out.length > 0 ? out : undefined);
      } catch (err) {
        cb(err instanceof MaskError ? err : new MaskError('the masker failed'));
      }
    },
  });
}
