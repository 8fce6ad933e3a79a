// What a callback's message says it is, the key WeChat's re-signed retries are deduplicated by:
// MsgId in XML and JSON (digits exact past 2^53), events by FromUserName + CreateTime + Event,
// a Pay notification's id; nothing for what names none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { payNotificationId, pushMessageId } from '../../gateway/wechat/callback-message-id.js';

test('MsgId from XML and JSON; JSON numbers past 2^53 keep every digit', () => {
  assert.equal(pushMessageId('<xml><MsgType><![CDATA[text]]></MsgType><MsgId>24571234567890123</MsgId></xml>', 'xml'), 'MsgId:24571234567890123');
  assert.equal(pushMessageId('{"MsgType":"text","MsgId":24571234567890123}', 'json'), 'MsgId:24571234567890123');
  assert.equal(pushMessageId('{"MsgType":"text","MsgId":24571234567890124}', 'json'), 'MsgId:24571234567890124');
  assert.equal(pushMessageId(Buffer.from('{"MsgId":"6054768590064713728"}'), 'json'), 'MsgId:6054768590064713728');
  // A nested MsgId is not the message's.
  assert.equal(pushMessageId('{"Extra":{"MsgId":1},"FromUserName":"oA","CreateTime":1714037059}', 'json'), 'Event:oA:1714037059:');
});

test('events: FromUserName, CreateTime and Event; a different event of the same second is another message', () => {
  const ev = (e: string): string => `<xml><FromUserName><![CDATA[oABC]]></FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${e}]]></Event></xml>`;
  assert.equal(pushMessageId(ev('subscribe'), 'xml'), 'Event:oABC:1714037059:subscribe');
  assert.notEqual(pushMessageId(ev('SCAN'), 'xml'), pushMessageId(ev('subscribe'), 'xml'));
  assert.equal(pushMessageId('{"FromUserName":"oABC","CreateTime":1714037059,"MsgType":"event","Event":"subscribe"}', 'json'), 'Event:oABC:1714037059:subscribe');
});

test('nothing for a message that names no id, or is not one', () => {
  assert.equal(pushMessageId('<xml><ToUserName>gh</ToUserName></xml>', 'xml'), undefined);
  assert.equal(pushMessageId('<xml><MsgId></MsgId></xml>', 'xml'), undefined);
  assert.equal(pushMessageId('not xml', 'xml'), undefined);
  assert.equal(pushMessageId('[1,2]', 'json'), undefined);
  assert.equal(pushMessageId(`<xml><MsgId>${'9'.repeat(300)}</MsgId></xml>`, 'xml'), undefined);
});

test('Pay: the top-level id of the envelope', () => {
  assert.equal(payNotificationId(Buffer.from('{"id":"EV-2018022511223320873","resource":{}}')), 'EV-2018022511223320873');
  assert.equal(payNotificationId(Buffer.from('{"resource":{"id":"inner"}}')), undefined);
  assert.equal(payNotificationId(Buffer.from('{"id":""}')), undefined);
  assert.equal(payNotificationId(Buffer.from('no json')), undefined);
});
