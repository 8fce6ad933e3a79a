// flat-xml.ts reads the common shape of a push without fast-xml-parser; it must never accept a
// document the validator refuses, and must give exactly the parser's fields for one it reads.
// Checked on the shapes WeChat sends and on seeded random near-misses around them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { flatXmlFields } from '../../gateway/wechat/flat-xml.js';
import { XML_OPTIONS, parseCallbackText } from '../../gateway/wechat/callback-body.js';

// callback-body.ts's settings.
// The gateway's own parser settings: the flat reader is held to what the gateway would otherwise parse.
const parser = new XMLParser(XML_OPTIONS);

function agrees(text: string): void {
  const flat = flatXmlFields(text);
  if (flat === undefined) return;
  assert.equal(XMLValidator.validate(text), true, `read a document the validator refuses: ${JSON.stringify(text)}`);
  const root = (parser.parse(text) as Record<string, unknown>).xml;
  assert.deepEqual({ ...flat }, root, `fields differ from the parser's for ${JSON.stringify(text)}`);
}

const PUSH =
  '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oABC]]></FromUserName>' +
  '<CreateTime>1714037060</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi </xml> & <b>]]></Content>' +
  '<MsgId>24571234567890123456</MsgId></xml>';

test('a WeChat push and an envelope are read as the parser reads them', () => {
  assert.deepEqual(flatXmlFields(PUSH), {
    ToUserName: 'gh_0123456789ab',
    FromUserName: 'oABC',
    CreateTime: '1714037060',
    MsgType: 'text',
    Content: 'hi </xml> & <b>',
    MsgId: '24571234567890123456',
  });
  agrees(PUSH);
  const envelope = '\n<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n  <Encrypt><![CDATA[QUJD+/==]]></Encrypt>\n</xml>\n';
  assert.deepEqual(flatXmlFields(envelope), { ToUserName: 'gh_1', Encrypt: 'QUJD+/==' });
  agrees(envelope);
  assert.deepEqual(parseCallbackText(envelope, 'xml'), { ToUserName: 'gh_1', Encrypt: 'QUJD+/==' });
  // CDATA keeps its spaces, text may hold `>`: as the parser has it.
  for (const text of ['<xml><A><![CDATA[ 1 ]]></A></xml>', '<xml><A><![CDATA[ ]]></A></xml>', '<xml><A>1>2</A></xml>', '<xml><A>a]]>b</A></xml>']) {
    assert.notEqual(flatXmlFields(text), undefined, text);
    agrees(text);
  }
});

test('anything past the flat shape is left to the validator and the parser', () => {
  for (const text of [
    '<xml></xml>',
    '<xml><A>1</A><A>2</A></xml>', // repeated: the parser makes an array
    '<xml><A x="1">1</A></xml>',
    '<xml><A/></xml>',
    '<xml><A></A></xml>',
    '<xml><A> 1</A></xml>',
    '<xml><A>&amp;</A></xml>',
    '<xml><A><B>1</B></A></xml>',
    '<xml><!-- c --><A>1</A></xml>',
    '<?xml version="1.0"?><xml><A>1</A></xml>',
    '<xml><A>1</A></xml><xml><A>1</A></xml>',
    '<xml><A>1</A></xml>x',
    '<xml>text<A>1</A></xml>',
    '<xml><A>1</B></xml>',
    '<xml><A><![CDATA[1]]>2</A></xml>',
    '<xml><A><![CDATA[]]></A></xml>',
    '<xml><__proto__>1</__proto__></xml>',
    '<xml><toString>1</toString></xml>',
    '<xml><prototype>1</prototype></xml>',
    '<xml><constructor>1</constructor></xml>',
    '<xml><a:b>1</a:b></xml>',
    '<xml><A>1</A>',
    '<xml><A><![CDATA[1</A></xml>',
    '<XML><A>1</A></XML>',
  ]) {
    assert.equal(flatXmlFields(text), undefined, text);
  }
});

test('seeded near-misses: whatever is read, the validator accepts and the parser agrees', () => {
  let seed = 17;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pieces = ['<', '>', '/', '<![CDATA[', ']]>', ']]', ' ', '\n', '\t', '&', '&amp;', 'A', 'B', 'xml', 'MsgId', '1', '=', '"', '!', '?', '-', '\u00e9', '\u3000', '_'];
  let read = 0;
  for (let n = 0; n < 20_000; n++) {
    let text = PUSH;
    for (let edits = 1 + random(3); edits > 0; edits--) {
      const at = random(text.length + 1);
      const op = random(3);
      const piece = pieces[random(pieces.length)]!;
      if (op === 0) text = text.slice(0, at) + piece + text.slice(at);
      else if (op === 1) text = text.slice(0, at) + text.slice(at + 1 + random(4));
      else text = text.slice(0, at) + piece + text.slice(at + piece.length);
    }
    if (flatXmlFields(text) !== undefined) read++;
    agrees(text);
  }
  // The mutations must leave a fair share readable, or the comparison proves nothing.
  assert.ok(read > 1000, `only ${read} mutated documents were read`);
});
