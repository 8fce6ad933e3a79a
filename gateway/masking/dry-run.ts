// A mask profile in report mode: the answer goes to the client as the upstream sent it, and this
// says what the profile would have done to it: which rule names and detectors would have fired,
// which headers it would have removed or rewritten, or why it would have failed. Never a value:
// what it returns is names from the policy and header names, safe for a log line.
//
// Only answers that fit in the profile's stream_above are examined (decoded when gzip, deflate or
// br); a streamed answer is read that far and passed on as it came, and a larger one passes
// unexamined, which the findings say. The
// body is parsed with JSON.parse, keeping each number's source text, and walked the way
// maskValue() walks a value; a duplicate key is looked at once (the last one), where masking
// would mask each.
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { MaskDetector } from '../types/policy.js';
import { resolveEntry, type CompiledMask, type PathNode } from './compile.js';
import { detect, detectInText } from './detectors.js';
import { maskHeaders, type Headers } from './header-rules.js';
import { bodyKind } from './http.js';

export interface MaskFindings {
  /**
   * Member names, as the answer spells them, whose values a key or path rule would have masked;
   * `*` for one reached only through a `*` in a path (any name could be there).
   */
  readonly keys: string[];
  readonly detectors: MaskDetector[];
  /** Response headers the profile would have removed or rewritten (`set-cookie` for a cookie line). */
  readonly headers: string[];
  /** Why masking would have failed (502 mask_failed unless on_mask_error: pass). */
  readonly failed?: string;
  /** Why the body was not looked at. */
  readonly unexamined?: string;
}

const DECODE: Record<string, (buf: Buffer, opts: zlib.ZlibOptions & zlib.BrotliOptions) => Promise<Buffer>> = {
  gzip: promisify(zlib.gunzip),
  'x-gzip': promisify(zlib.gunzip),
  deflate: promisify(zlib.inflate),
  br: promisify(zlib.brotliDecompress),
};

/** A number as its source text, so detectors see digits JSON.parse would round. */
class NumberText {
  constructor(readonly text: string) {}
}

interface Found {
  keys: Set<string>;
  detectors: Set<MaskDetector>;
}

const ruleNames = new WeakMap<CompiledMask, ReadonlySet<string>>();

function namesOf(mask: CompiledMask): ReadonlySet<string> {
  let names = ruleNames.get(mask);
  if (!names) {
    names = new Set(mask.names.flatMap((list) => (list ?? []).map((e) => e.name)));
    ruleNames.set(mask, names);
  }
  return names;
}

function detectText(mask: CompiledMask, text: string, f: Found): void {
  // Whole values first, in the masker's order: an ID number also passes Luhn.
  for (const d of mask.detectors) {
    if (detect([d], text) !== undefined) {
      f.detectors.add(d);
      return;
    }
  }
  if (detectInText(mask.detectors, text) === undefined) return;
  for (const d of mask.detectors) if (detectInText([d], text) !== undefined) f.detectors.add(d);
}

function walk(mask: CompiledMask, value: unknown, nodes: PathNode[], f: Found): void {
  if (typeof value === 'string') {
    if (mask.detectors.length > 0) detectText(mask, value, f);
    return;
  }
  if (value instanceof NumberText) {
    if (mask.detectors.length > 0 && /^[0-9]+$/.test(value.text)) detectText(mask, value.text, f);
    return;
  }
  if (Array.isArray(value)) {
    const { action, next } = nodes.length > 0 ? resolveEntry(mask, nodes, undefined) : { action: undefined, next: [] };
    if (action !== undefined && value.length > 0) {
      f.keys.add('*');
      return;
    }
    for (const v of value) walk(mask, v, next, f);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    const names = namesOf(mask);
    for (const [k, v] of Object.entries(value)) {
      const canon = mask.canon(k);
      const { action, next } = resolveEntry(mask, nodes, canon);
      if (action !== undefined) f.keys.add(names.has(canon) ? k : '*');
      else walk(mask, v, next, f);
    }
  }
}

function parse(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined ? new NumberText(context.source) : value,
  );
}

function headerFindings(mask: CompiledMask, headers: Headers): string[] {
  if (!mask.headers.active) return [];
  const after = maskHeaders(mask.headers, headers, mask.hashKey);
  const out: string[] = [];
  for (const name in headers) {
    const before = headers[name];
    if (before === undefined) continue;
    const now = after[name];
    const same = Array.isArray(before) ? Array.isArray(now) && now.length === before.length && before.every((v, i) => v === now[i]) : now === before;
    if (!same) out.push(name);
  }
  return out;
}

function bodyFindings(mask: CompiledMask, plain: Buffer, kind: 'json' | 'text'): Found | { failed: string } {
  const f: Found = { keys: new Set(), detectors: new Set() };
  let value: unknown;
  try {
    value = parse(plain.toString('utf8'));
  } catch {
    if (kind === 'json') return { failed: 'the body is not JSON' };
    if (mask.detectors.length > 0) detectText(mask, plain.toString('latin1'), f);
    return f;
  }
  walk(mask, value, mask.pathRoot ? [mask.pathRoot] : [], f);
  return f;
}

/**
 * A streamed body read up to `cap` bytes: the whole of it when it ended by then, and in any case
 * a stream with every byte still to come, to pass on instead of the one given.
 */
async function collect(body: Readable, cap: number): Promise<{ whole: Buffer | undefined; body: Readable }> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const chunks: Buffer[] = [];
  let size = 0;
  while (size <= cap) {
    const r = await it.next();
    if (r.done) {
      const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      return { whole, body: Readable.from([whole], { objectMode: false }) };
    }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    chunks.push(chunk);
    size += chunk.length;
  }
  const rest = Readable.from(
    (async function* () {
      yield* chunks;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    })(),
    { objectMode: false },
  );
  return { whole: undefined, body: rest };
}

/**
 * What the profile would have done to an answer, and the body to send on: the one given when it
 * was a Buffer, else a stream of the same bytes (a stream is read up to stream_above to look at it).
 */
export async function dryRunAnswer<B extends Buffer | Readable>(
  mask: CompiledMask,
  res: { statusCode: number; headers: Headers; body: B },
  method: string,
): Promise<{ findings: MaskFindings; body: Buffer | Readable }> {
  if (Buffer.isBuffer(res.body) || method === 'HEAD') return { findings: await dryRunMask(mask, res, method), body: res.body };
  const { whole, body } = await collect(res.body as Readable, mask.streamAbove);
  return { findings: await dryRunMask(mask, { ...res, body: whole }, method), body };
}

async function dryRunMask(mask: CompiledMask, res: { statusCode: number; headers: Headers; body: unknown }, method: string): Promise<MaskFindings> {
  const headers = headerFindings(mask, res.headers);
  const none = (extra?: { failed?: string; unexamined?: string }): MaskFindings => ({ keys: [], detectors: [], headers, ...extra });
  const { statusCode } = res;
  if (method === 'HEAD' || statusCode < 200 || statusCode === 204 || statusCode === 304) return none();
  const kind = bodyKind(mask, res.headers['content-type']);
  if (kind === 'binary') return none();
  if (typeof kind === 'object') return none({ failed: `conflicting Content-Type headers: ${kind.conflict}` });
  if (statusCode === 206) return none({ failed: 'a partial (206) JSON response cannot be masked' });
  if (!Buffer.isBuffer(res.body)) return none({ unexamined: `the body is larger than stream_above (${mask.streamAbove} bytes) or streamed` });
  let plain = res.body;
  if (plain.length === 0) return none();
  const encoding = res.headers['content-encoding'];
  const codings = (Array.isArray(encoding) ? encoding.join(',') : (encoding ?? ''))
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  for (const coding of codings.reverse()) {
    const decode = DECODE[coding];
    // Enforced, the upstream is asked only for codings the masker can undo (decodableAcceptEncoding).
    if (!decode) return none({ unexamined: `content-encoding ${coding.slice(0, 40).replace(/[^\x21-\x7e]/g, '?')}, which masking would not have asked for` });
    try {
      plain = await decode(plain, { maxOutputLength: mask.streamAbove });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return none({ unexamined: `the decoded body is larger than stream_above (${mask.streamAbove} bytes)` });
      return none({ failed: 'the body does not decode with its content-encoding' });
    }
  }
  const found = bodyFindings(mask, plain, kind);
  if ('failed' in found) return none({ failed: found.failed });
  return { keys: [...found.keys].sort(), detectors: [...found.detectors], headers };
}
