// Reading and writing the bodies of WeChat message pushes. Pushes are XML, or JSON for
// mini-programs that chose it; safe mode carries the ciphertext in `Encrypt` in both. Bodies
// reach the legacy upstream, whose XML parser may well resolve entities, so a DTD is refused
// outright and nothing here ever expands an entity.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { CallbackError } from './callback-error.js';

export type BodyFormat = 'xml' | 'json';

export const CONTENT_TYPES: Record<BodyFormat, string> = {
  xml: 'text/xml; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const parser = new XMLParser({
  processEntities: false,
  htmlEntities: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  // Values stay strings: a numeric-looking Encrypt or ToUserName must not become a number.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  maxNestedTags: 32,
});

/** JSON when the Content-Type says so or the body starts with `{`; XML otherwise. */
export function detectFormat(contentType: string | undefined, body: Buffer): BodyFormat {
  if (contentType && /\bjson\b/i.test(contentType)) return 'json';
  for (const byte of body) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte === 0x7b /* { */ ? 'json' : 'xml';
  }
  return 'xml';
}

/**
 * Parses a push body into its top-level fields, refusing anything that is not a well-formed
 * `<xml>` document without DTD, or a JSON object.
 */
export function parseCallbackBody(body: Buffer, format: BodyFormat): Record<string, unknown> {
  const text = decode(body, format);
  if (format === 'json') return parseJson(text);
  wellFormedXml(text);
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch {
    throw new CallbackError('callback_malformed', 'XML body does not parse');
  }
  const root = (doc as Record<string, unknown>).xml;
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    throw new CallbackError('callback_malformed', 'XML body has no single <xml> root element');
  }
  return root as Record<string, unknown>;
}

/** The same rules as parseCallbackBody, for bodies passed on whose fields nothing reads. */
export function checkCallbackBody(body: Buffer, format: BodyFormat): void {
  const text = decode(body, format);
  if (format === 'json') parseJson(text);
  else wellFormedXml(text);
}

function decode(body: Buffer, format: BodyFormat): string {
  try {
    return utf8.decode(body);
  } catch {
    throw new CallbackError('callback_malformed', `${format} body is not UTF-8`);
  }
}

function parseJson(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CallbackError('callback_malformed', 'JSON body does not parse');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CallbackError('callback_malformed', 'JSON body is not an object');
  }
  // JSON.parse keeps the last of two equal keys; a legacy parser downstream may take the first,
  // and read a field the gateway never verified (e.g. a second Encrypt).
  if (repeatsTopLevelKey(text)) throw new CallbackError('callback_malformed', 'JSON body repeats a top-level key');
  return value as Record<string, unknown>;
}

/** Whether an object that JSON.parse accepted names one top-level key twice, escapes decoded. */
function repeatsTopLevelKey(text: string): boolean {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c /* \ */ ? 2 : 1;
      if (depth === 1) {
        let next = end + 1;
        while (/\s/.test(text[next]!)) next++;
        if (text[next] === ':') {
          const key = JSON.parse(text.slice(i, end + 1)) as string;
          if (seen.has(key)) return true;
          seen.add(key);
        }
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return false;
}

/**
 * Refuses text that declares a DTD or entity, which an XML parser downstream might resolve. Also
 * for a decrypted message, whose signature covered only the ciphertext.
 */
export function refuseDtd(text: string, what: string): void {
  if (/<!(?:DOCTYPE|ENTITY)/i.test(text)) {
    throw new CallbackError('callback_malformed', `${what} declares a DTD or entity`);
  }
}

function wellFormedXml(text: string): void {
  refuseDtd(text, 'XML body');
  if (XMLValidator.validate(text) !== true) {
    throw new CallbackError('callback_malformed', 'XML body is not well-formed');
  }
}

/** The safe-mode ciphertext of a parsed push body. */
export function extractEncrypt(fields: Record<string, unknown>): string {
  const encrypt = fields.Encrypt;
  if (typeof encrypt !== 'string' || encrypt.length === 0) {
    throw new CallbackError('callback_malformed', 'body has no single non-empty Encrypt field');
  }
  return encrypt;
}

export interface ReplyEnvelope {
  encrypt: string;
  signature: string;
  timestamp: string;
  nonce: string;
}

/**
 * The passive-reply envelope of safe mode, in the format of the push it answers. Base64, hex and
 * the digits of timestamp and nonce cannot contain `]]>`, so CDATA needs no escaping.
 */
export function buildReplyEnvelope(format: BodyFormat, e: ReplyEnvelope): string {
  if (format === 'json') {
    return JSON.stringify({ Encrypt: e.encrypt, MsgSignature: e.signature, TimeStamp: Number(e.timestamp), Nonce: e.nonce });
  }
  return (
    `<xml><Encrypt><![CDATA[${e.encrypt}]]></Encrypt>` +
    `<MsgSignature><![CDATA[${e.signature}]]></MsgSignature>` +
    `<TimeStamp>${e.timestamp}</TimeStamp>` +
    `<Nonce><![CDATA[${e.nonce}]]></Nonce></xml>`
  );
}
