// Reading and writing the bodies of WeChat message pushes. Pushes are XML, or JSON for
// mini-programs that chose it; safe mode carries the ciphertext in `Encrypt` in both. Bodies
// reach the legacy upstream, whose XML parser may well resolve entities, so a DTD is refused
// outright and nothing here ever expands an entity.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { CallbackError } from './callback-error.js';
import { flatXmlFields } from './flat-xml.js';

export type BodyFormat = 'xml' | 'json';

export const CONTENT_TYPES: Record<BodyFormat, string> = {
  xml: 'text/xml; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** How callback XML is read; flat-xml.ts must give the same fields as a parser with these. */
export const XML_OPTIONS = Object.freeze({
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
  // Nothing here reads the path of a tag: no string of it built for every tag.
  jPath: false,
});
const parser = new XMLParser(XML_OPTIONS);

/** JSON when the Content-Type says so or the body (bytes or decoded text) starts with `{`; XML otherwise. */
export function detectFormat(contentType: string | undefined, body: Buffer | string): BodyFormat {
  if (contentType && /\bjson\b/i.test(contentType)) return 'json';
  const text = typeof body === 'string';
  for (let i = 0; i < body.length; i++) {
    const c = text ? body.charCodeAt(i) : body[i]!;
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return c === 0x7b /* { */ ? 'json' : 'xml';
  }
  return 'xml';
}

/**
 * Parses a push body into its top-level fields, refusing anything that is not a well-formed
 * `<xml>` document without DTD, or a JSON object.
 */
export function parseCallbackBody(body: Buffer, format: BodyFormat): Record<string, unknown> {
  return parseCallbackText(decode(body, format), format);
}

/** parseCallbackBody of text already decoded (a decrypted message). */
export function parseCallbackText(text: string, format: BodyFormat): Record<string, unknown> {
  if (format === 'json') return parseJson(text);
  refuseDtd(text, 'XML body');
  const flat = flatXmlFields(text);
  if (flat) return flat;
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

/**
 * The same rules as parseCallbackBody, for bodies passed on as received. Returns the fields of a
 * flat XML body (flat-xml.ts), which came for free; undefined for anything else.
 */
export function checkCallbackBody(body: Buffer, format: BodyFormat): Record<string, string> | undefined {
  const text = decode(body, format);
  if (format === 'json') {
    parseJson(text);
    return undefined;
  }
  refuseDtd(text, 'XML body');
  const flat = flatXmlFields(text);
  if (!flat) wellFormedXml(text);
  return flat;
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

/** After refuseDtd. */
function wellFormedXml(text: string): void {
  if (XMLValidator.validate(text) !== true) {
    throw new CallbackError('callback_malformed', 'XML body is not well-formed');
  }
}

/**
 * How a safe-mode envelope spells its keys: WeChat's `Encrypt`/`ToUserName`, or WeCom's JSON
 * callbacks' `encrypt`/`tousername`/`agentid` (WXBizJsonMsgCrypt), whose replies are lower-case too.
 */
export type EnvelopeCase = 'wechat' | 'lower';

/** A safe-mode envelope's ciphertext field and the routing hints beside it, by spelling; anything else is a compatible-mode plain field. */
const ENVELOPE_FIELDS: Record<EnvelopeCase, { encrypt: string; hints: readonly string[] }> = {
  wechat: { encrypt: 'Encrypt', hints: ['ToUserName', 'AgentID'] },
  lower: { encrypt: 'encrypt', hints: ['tousername', 'agentid'] },
};
const ENVELOPE_VALUE = /^[A-Za-z0-9_@.-]{1,128}$/;
const CIPHERTEXT = /^[A-Za-z0-9+/=]+$/;

/**
 * The safe-mode ciphertext of a parsed push body and how its envelope spells keys. Only a JSON
 * body may use WeCom's lower-case `encrypt`, and never beside `Encrypt`: two ciphertexts would
 * leave the upstream to pick one the gateway never verified.
 */
export function extractEncrypt(fields: Record<string, unknown>, format: BodyFormat = 'xml'): { encrypt: string; casing: EnvelopeCase } {
  const lower = format === 'json' && 'encrypt' in fields;
  if (lower && 'Encrypt' in fields) throw new CallbackError('callback_malformed', 'body has both Encrypt and encrypt');
  const encrypt = lower ? fields.encrypt : fields.Encrypt;
  if (typeof encrypt !== 'string' || encrypt.length === 0) {
    throw new CallbackError('callback_malformed', 'body has no single non-empty Encrypt field');
  }
  return { encrypt, casing: lower ? 'lower' : 'wechat' };
}

/**
 * Compatible mode sends the message in plain fields beside `Encrypt`, but msg_signature covers
 * the ciphertext alone. With the plain fields present this is the body cut down to the envelope
 * (ToUserName, AgentID, Encrypt in the push's format and spelling): a backend that trusts the
 * verified header then reads nothing the signature did not cover. undefined when the body holds
 * nothing else and goes on as received. ToUserName and AgentID stay because the official
 * WXBizMsgCrypt samples refuse an envelope without ToUserName; they are routing hints, not
 * signed (the decrypted message carries its own ToUserName).
 */
export function envelopeOnly(fields: Record<string, unknown>, format: BodyFormat, casing: EnvelopeCase): Buffer | undefined {
  const { encrypt, hints } = ENVELOPE_FIELDS[casing];
  if (Object.keys(fields).every((k) => k === encrypt || hints.includes(k))) return undefined;
  const kept: [string, string | number][] = [];
  for (const name of hints) {
    const value = fields[name];
    // A hint that could break out of CDATA is dropped; WeCom's JSON gives agentid as a number.
    if ((typeof value === 'string' && ENVELOPE_VALUE.test(value)) || Number.isSafeInteger(value)) kept.push([name, value as string | number]);
  }
  const ciphertext = fields[encrypt] as string;
  if (!CIPHERTEXT.test(ciphertext)) throw new CallbackError('callback_malformed', 'Encrypt is not base64');
  kept.push([encrypt, ciphertext]);
  if (format === 'json') return Buffer.from(JSON.stringify(Object.fromEntries(kept)), 'utf8');
  return Buffer.from(`<xml>${kept.map(([k, v]) => `<${k}><![CDATA[${v}]]></${k}>`).join('')}</xml>`, 'utf8');
}

export interface ReplyEnvelope {
  encrypt: string;
  signature: string;
  timestamp: string;
  nonce: string;
}

/**
 * The passive-reply envelope of safe mode, in the format of the push it answers: XML (WeChat and
 * WeCom alike), JSON with WeChat's keys, or JSON with WeCom's lower-case keys. Base64, hex and the
 * digits of timestamp and nonce cannot contain `]]>`, so CDATA needs no escaping.
 */
export function buildReplyEnvelope(format: BodyFormat, e: ReplyEnvelope, casing: EnvelopeCase = 'wechat'): string {
  if (format === 'json' && casing === 'lower') {
    return JSON.stringify({ encrypt: e.encrypt, msgsignature: e.signature, timestamp: Number(e.timestamp), nonce: e.nonce });
  }
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

/**
 * Whether an upstream's reply is already a safe-mode reply envelope (the backend runs a WeChat
 * SDK that encrypts itself): sealing it again would make WeChat decrypt to an envelope.
 */
export function isReplyEnvelope(body: Buffer): boolean {
  const format = detectFormat(undefined, body);
  let fields: Record<string, unknown>;
  try {
    fields = parseCallbackBody(body, format);
  } catch {
    return false;
  }
  const has = (a: string, b: string): boolean => typeof (fields[a] ?? fields[b]) === 'string';
  return has('Encrypt', 'encrypt') && has('MsgSignature', 'msgsignature');
}
