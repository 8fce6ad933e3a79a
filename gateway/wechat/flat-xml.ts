// The shape WeChat pushes and envelopes have, read in one pass: an `<xml>` root whose children
// are all leaves, each holding plain text or one CDATA section. Every push used to pay for
// fast-xml-parser's validator and then its parser (about half a callback's CPU time); a body of
// this shape needs neither. Anything else (attributes, comments, processing instructions, nested
// or repeated elements, entities, a name the parser would rename) is not read here: the caller
// falls back to the validator and the parser, so the rules and the result stay theirs.
// test/unit/wechat-flat-xml.test.ts holds both to the same answers.

/** ASCII names only, never one the parser renames (Object.prototype's own, `prototype`). */
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return i;
    i++;
  }
}

/**
 * The top-level fields of `text` when it is a flat `<xml>` document as described above: exactly
 * what fast-xml-parser (callback-body.ts's settings) gives for it, and a document its validator
 * accepts. undefined for any other text, which the caller then validates and parses in full.
 */
export function flatXmlFields(text: string): Record<string, string> | undefined {
  let i = skipSpace(text, 0);
  if (!text.startsWith('<xml>', i)) return undefined;
  i += 5;
  const out: Record<string, string> = {};
  let count = 0;
  for (;;) {
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== 0x3c /* < */) return undefined;
    if (text.startsWith('</xml>', i)) {
      i += 6;
      break;
    }
    const open = text.indexOf('>', i + 1);
    if (open < 0) return undefined;
    const name = text.slice(i + 1, open);
    if (!NAME.test(name) || name in Object.prototype || name === 'prototype' || Object.hasOwn(out, name)) return undefined;
    i = open + 1;
    let value: string;
    if (text.startsWith('<![CDATA[', i)) {
      const end = text.indexOf(']]>', i + 9);
      if (end < 0) return undefined;
      value = text.slice(i + 9, end);
      i = end + 3;
    } else {
      const end = text.indexOf('<', i);
      if (end < 0) return undefined;
      value = text.slice(i, end);
      // Entities and trimming are the parser's business.
      if (value.includes('&') || value.trim() !== value) return undefined;
      i = end;
    }
    if (value.length === 0 || !text.startsWith(`</${name}>`, i)) return undefined;
    i += name.length + 3;
    out[name] = value;
    count++;
  }
  return count > 0 && skipSpace(text, i) === text.length ? out : undefined;
}
