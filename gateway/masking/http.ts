// The HTTP side of masking: which responses are masked, how their encoding is undone and redone,
// and which headers stop being true once the body changes. Small bodies are masked in one pass
// so that they get an exact Content-Length and a clean failure; large or growing ones stream.
//
// Which bodies: wx.request parses an answer as JSON whatever its Content-Type, so on a masked
// route every answer is masked except those the upstream labels as binary media. One declared
// as JSON must be JSON (else it fails closed); any other (text/html, text/plain, none at all) is
// masked as JSON when it parses, and otherwise searched by the detectors as text.
import { Readable, pipeline, type Transform } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { CompiledMask } from './compile.js';
import { maskJsonBuffer } from './json-mask.js';
import { createMaskStream } from './json-stream.js';
import { MaskError } from './rewriter.js';
import { maskTextBuffer } from './text-mask.js';
import type { Headers } from './header-rules.js';

export { MaskError };
export type { Headers };

export type MaskOutcome =
  | { kind: 'untouched' }
  | { kind: 'masked'; headers: Headers; body: Buffer | Readable }
  /**
   * `original`: the upstream's body exactly as received, with headers fit to send it, when it had
   * already been read whole (a buffered body that is not JSON or does not decode), for
   * `on_mask_error: pass`. Absent when the body was refused before reading; it has been discarded.
   */
  | { kind: 'failed'; why: string; original?: { headers: Headers; body: Buffer } };

export interface UpstreamResponse {
  statusCode: number;
  headers: Headers;
  /** The body as it streams, or the whole body when the caller already read it. */
  body: Readable | Buffer;
}

interface Codec {
  decode(buf: Buffer, maxOutputLength: number): Promise<Buffer>;
  encode(buf: Buffer): Promise<Buffer>;
  decoder(): Transform;
  encoder(): Transform;
}

// Quality 11 (the default) compresses at a few MB/s, far below what the masker streams at; 4 is
// close to gzip's ratio at gzip's speed.
const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } };

const gzip: Codec = {
  decode: (buf, maxOutputLength) => promisify(zlib.gunzip)(buf, { maxOutputLength }),
  encode: (buf) => promisify(zlib.gzip)(buf),
  decoder: () => zlib.createGunzip(),
  encoder: () => zlib.createGzip(),
};

// HTTP's `deflate` is the zlib format (RFC 9110); raw deflate streams are refused as corrupt.
const CODECS: Record<string, Codec> = {
  gzip,
  'x-gzip': gzip,
  deflate: {
    decode: (buf, maxOutputLength) => promisify(zlib.inflate)(buf, { maxOutputLength }),
    encode: (buf) => promisify(zlib.deflate)(buf),
    decoder: () => zlib.createInflate(),
    encoder: () => zlib.createDeflate(),
  },
  br: {
    decode: (buf, maxOutputLength) => promisify(zlib.brotliDecompress)(buf, { maxOutputLength }),
    encode: (buf) => promisify(zlib.brotliCompress)(buf, BROTLI),
    decoder: () => zlib.createBrotliDecompress(),
    encoder: () => zlib.createBrotliCompress(BROTLI),
  },
};

/**
 * The client's Accept-Encoding narrowed to the codings maskResponse() can undo, for the request to
 * the upstream of a masked route: an upstream that honours `zstd` would otherwise make every
 * answer unmaskable. `*` is spelled out; nothing acceptable left (or no header) is `identity`.
 */
export function decodableAcceptEncoding(value: string | string[] | undefined): string {
  const kept: string[] = [];
  for (const raw of (Array.isArray(value) ? value.join(',') : (value ?? '')).split(',')) {
    const semi = raw.indexOf(';');
    const name = (semi < 0 ? raw : raw.slice(0, semi)).trim().toLowerCase();
    const params = semi < 0 ? '' : raw.slice(semi).trim();
    if (name === 'identity' || Object.hasOwn(CODECS, name)) kept.push(name + params);
    else if (name === '*') kept.push(`gzip${params}`, `deflate${params}`, `br${params}`);
  }
  return kept.length > 0 ? kept.join(', ') : 'identity';
}

/** Headers that describe the exact bytes of the body, wrong once masking changes them. */
const BODY_DIGESTS = ['etag', 'content-md5', 'digest', 'content-digest', 'repr-digest'];

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * How a body is masked, by its Content-Type. `json`: declared JSON, masked as JSON or refused.
 * `text`: anything else a mini-program may parse (text, an unknown type, none), masked as JSON
 * when it is JSON, else searched by the detectors. `binary`: media no one parses as JSON,
 * passed as it is. `conflict`: several different types, which a backend and a client may read
 * differently: refused.
 */
export type BodyKind = 'json' | 'text' | 'binary' | { conflict: string };

/** Declared JSON, besides any `+json` type: the standard type and the legacy spellings still in use. */
const JSON_TYPES: ReadonlySet<string> = new Set(['application/json', 'text/json', 'application/x-json', 'text/x-json']);

/**
 * Binary media: images, sound, video, fonts, 3D models, and the archive, document and
 * serialisation formats below. A mini-program fetches these with wx.downloadFile or an
 * arraybuffer responseType and never parses them as text, and nothing in them is text the
 * detectors could safely rewrite.
 */
const BINARY_FAMILIES = ['image/', 'audio/', 'video/', 'font/', 'model/'];
const BINARY_TYPES: ReadonlySet<string> = new Set([
  'application/octet-stream',
  'application/pdf',
  'application/zip',
  'application/gzip',
  'application/x-gzip',
  'application/x-tar',
  'application/x-bzip2',
  'application/x-7z-compressed',
  'application/vnd.rar',
  'application/x-rar-compressed',
  'application/wasm',
  'application/protobuf',
  'application/x-protobuf',
  'application/vnd.google.protobuf',
  'application/msword',
  'application/vnd.ms-excel',
  'application/vnd.ms-powerpoint',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
]);

/** The media types of a Content-Type field: one per header line, and per comma outside quotes. */
function mediaTypes(value: string | string[]): string[] {
  const types: string[] = [];
  for (const line of Array.isArray(value) ? value : [value]) {
    let quoted = false;
    let start = 0;
    for (let k = 0; k <= line.length; k++) {
      const c = line[k];
      if (c === '"') quoted = !quoted;
      else if (k === line.length || (c === ',' && !quoted)) {
        const type = line.slice(start, k).split(';', 1)[0]!.trim().toLowerCase();
        if (type !== '' && !types.includes(type)) types.push(type);
        start = k + 1;
      }
    }
  }
  return types;
}

export function bodyKind(mask: CompiledMask, contentType: string | string[] | undefined): BodyKind {
  const types = contentType === undefined ? [] : mediaTypes(contentType);
  // Missing and empty alike: wx.request parses the body anyway.
  if (types.length === 0) return 'text';
  if (types.length > 1) return { conflict: types.map((t) => t.slice(0, 60).replace(/[^\x21-\x7e]/g, '?')).join(', ') };
  const type = types[0]!;
  if (JSON_TYPES.has(type) || mask.contentTypes.has(type)) return 'json';
  const slash = type.indexOf('/');
  if (slash > 0 && type.endsWith('+json') && type.length > slash + 1 + '+json'.length) return 'json';
  if (BINARY_TYPES.has(type) || BINARY_FAMILIES.some((f) => type.startsWith(f))) return 'binary';
  return 'text';
}

/** The codecs of a Content-Encoding in the order they were applied, or the first unknown name. */
function codecsOf(value: string | undefined): { codecs: Codec[] } | { unknown: string } {
  const codecs: Codec[] = [];
  for (const raw of (value ?? '').split(',')) {
    const name = raw.trim().toLowerCase();
    if (name === '' || name === 'identity' || name === 'none') continue;
    const codec = CODECS[name];
    // A header value, not body content, but still cut short and kept printable for the reason.
    if (codec === undefined) return { unknown: name.slice(0, 40).replace(/[^\x21-\x7e]/g, '?') };
    codecs.push(codec);
  }
  return { codecs };
}

function failed(body: Readable | Buffer, why: string): MaskOutcome {
  if (!Buffer.isBuffer(body)) body.destroy();
  return { kind: 'failed', why };
}

/**
 * Masks an upstream response. Not for answers that have no body whatever their headers say
 * (HEAD): the caller knows the method, this function does not.
 * `untouched`: send it on as it is (its body has not been read).
 * `masked`: send these headers and this body instead; a stream body errors with MaskError on
 * invalid JSON, and the caller must then cut the connection. `failed`: the body could not be
 * masked; see `original` for whether it can still be sent.
 */
export async function maskResponse(mask: CompiledMask, res: UpstreamResponse): Promise<MaskOutcome> {
  const { headers, body } = res;
  const screened = screen(mask, res);
  if ('outcome' in screened) return screened.outcome;
  const { codecs, length, kind } = screened;

  const cap = mask.streamAbove;
  const buffered: Buffer[] = [];
  let size = 0;
  let ended = false;
  let it: AsyncIterator<Buffer | string> | undefined;
  if (Buffer.isBuffer(body)) {
    buffered.push(body);
    ended = true;
  } else if (length === undefined || !(length > cap)) {
    it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
    try {
      while (size <= cap) {
        const r = await it.next();
        if (r.done) {
          ended = true;
          break;
        }
        const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
        buffered.push(chunk);
        size += chunk.length;
      }
    } catch {
      return failed(body, 'the upstream body could not be read');
    }
  }

  if (ended) {
    const raw = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered);
    let plain = raw;
    let decodesLarge = false;
    try {
      for (let k = codecs.length - 1; k >= 0; k--) plain = await codecs[k]!.decode(plain, cap);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_BUFFER_TOO_LARGE') {
        return { kind: 'failed', why: 'the body does not decode with its content-encoding', original: asReceived(headers, raw) };
      }
      // Small on the wire, more than stream_above once decoded: streamed like any large body.
      decodesLarge = true;
    }
    if (!decodesLarge) return maskBuffered(mask, headers, raw, plain, codecs, kind);
  }
  return maskStreamed(mask, headers, Buffer.isBuffer(body) ? Readable.from([body]) : body, buffered, ended ? undefined : it, codecs, kind);
}

type Screened = { outcome: MaskOutcome } | { codecs: Codec[]; length: number | undefined; kind: 'json' | 'text' };

/** What is decided from the status and headers alone: an outcome, or how the body is encoded. */
function screen(mask: CompiledMask, res: UpstreamResponse): Screened {
  const { statusCode, headers, body } = res;
  if (statusCode < 200 || statusCode === 204 || statusCode === 304) return { outcome: { kind: 'untouched' } };
  const kind = bodyKind(mask, headers['content-type']);
  if (kind === 'binary') return { outcome: { kind: 'untouched' } };
  if (typeof kind === 'object') return { outcome: failed(body, `conflicting Content-Type headers: ${kind.conflict}`) };
  const lengthHeader = header(headers, 'content-length');
  const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
  if (length === 0) return { outcome: { kind: 'untouched' } };
  if (statusCode === 206) return { outcome: failed(body, 'a partial (206) JSON response cannot be masked') };
  const enc = codecsOf(header(headers, 'content-encoding'));
  if ('unknown' in enc) return { outcome: failed(body, `content-encoding ${enc.unknown} cannot be decoded`) };
  return { codecs: enc.codecs, length, kind };
}

/**
 * The headers of an answer to HEAD on a masked route. The upstream's Content-Length is the
 * unmasked body's, and its ETag and digests may be derived from it (nginx's ETag holds the
 * size): all are removed, so the answer says nothing about what masking would hide.
 * `failed` when the Content-Type conflicts, as for GET.
 */
export function maskHead(mask: CompiledMask, res: { statusCode: number; headers: Headers }): { headers: Headers } | { failed: string } {
  if (res.statusCode < 200 || res.statusCode === 204 || res.statusCode === 304) return { headers: res.headers };
  const kind = bodyKind(mask, res.headers['content-type']);
  if (kind === 'binary') return { headers: res.headers };
  if (typeof kind === 'object') return { failed: `conflicting Content-Type headers: ${kind.conflict}` };
  const out: Headers = { ...res.headers };
  delete out['content-length'];
  for (const h of BODY_DIGESTS) delete out[h];
  return { headers: out };
}

/**
 * maskResponse() for a body already read whole that is not content-encoded (the common small JSON
 * answer), decided synchronously; undefined when the body must be decoded first.
 */
export function maskWhole(mask: CompiledMask, res: UpstreamResponse & { body: Buffer }): MaskOutcome | undefined {
  const screened = screen(mask, res);
  if ('outcome' in screened) return screened.outcome;
  if (screened.codecs.length > 0 || res.body.length > mask.streamAbove) return undefined;
  const masked = maskBytes(mask, res.headers, res.body, res.body, screened.kind);
  return Buffer.isBuffer(masked) ? withMaskedBody(res.headers, masked) : masked;
}

function asReceived(headers: Headers, raw: Buffer): { headers: Headers; body: Buffer } {
  const out: Headers = { ...headers, 'content-length': String(raw.length) };
  delete out['transfer-encoding'];
  return { headers: out, body: raw };
}

/**
 * The masked (decoded) bytes, or the outcome when nothing changed or the body cannot be masked:
 * declared JSON that is not JSON. Any other body that is not JSON is masked as text.
 */
function maskBytes(mask: CompiledMask, headers: Headers, raw: Buffer, plain: Buffer, kind: 'json' | 'text'): Buffer | MaskOutcome {
  let result: { changed: boolean; body: Buffer };
  try {
    result = maskJsonBuffer(mask, plain);
  } catch (err) {
    if (!(err instanceof MaskError)) throw err;
    if (kind === 'json') return { kind: 'failed', why: err.why, original: asReceived(headers, raw) };
    const text = maskTextBuffer(mask.detectors, plain);
    result = text === undefined ? { changed: false, body: plain } : { changed: true, body: text };
  }
  return result.changed ? result.body : { kind: 'masked', ...asReceived(headers, raw) };
}

function withMaskedBody(headers: Headers, body: Buffer): MaskOutcome {
  const out: Headers = { ...headers, 'content-length': String(body.length) };
  delete out['transfer-encoding'];
  for (const h of BODY_DIGESTS) delete out[h];
  return { kind: 'masked', headers: out, body };
}

async function maskBuffered(mask: CompiledMask, headers: Headers, raw: Buffer, plain: Buffer, codecs: Codec[], kind: 'json' | 'text'): Promise<MaskOutcome> {
  const masked = maskBytes(mask, headers, raw, plain, kind);
  if (!Buffer.isBuffer(masked)) return masked;
  let body = masked;
  for (const codec of codecs) body = await codec.encode(body);
  return withMaskedBody(headers, body);
}

function maskStreamed(
  mask: CompiledMask,
  headers: Headers,
  body: Readable,
  buffered: Buffer[],
  rest: AsyncIterator<Buffer | string> | undefined,
  codecs: Codec[],
  kind: 'json' | 'text',
): MaskOutcome {
  const source =
    buffered.length === 0 && rest === undefined
      ? body
      : Readable.from(
          (async function* () {
            yield* buffered;
            if (rest === undefined) return;
            for (let r = await rest.next(); !r.done; r = await rest.next()) yield r.value;
          })(),
          { objectMode: false },
        );
  const stages: NodeJS.ReadWriteStream[] = [];
  for (let k = codecs.length - 1; k >= 0; k--) stages.push(codecs[k]!.decoder());
  stages.push(createMaskStream(mask, kind === 'json' ? 'json' : 'sniff'));
  for (const codec of codecs) stages.push(codec.encoder());
  // Errors reach the returned stream, which the caller consumes; nothing else needs them here.
  const output = pipeline([source, ...stages], () => {}) as unknown as Readable;
  const out: Headers = { ...headers };
  delete out['content-length'];
  for (const h of BODY_DIGESTS) delete out[h];
  return { kind: 'masked', headers: out, body: output };
}
