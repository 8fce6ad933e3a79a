// What the scanner calls personal data in a JSON answer: by key (folded, as mask rules compare
// names) and by shape (the gateway's detectors), always masked in what it reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSensitive } from '../../gateway/scan/payload.js';

test('secrets by key in any spelling, at any depth', () => {
  const hits = findSensitive({ data: { sessionKey: 'tiihtNczf5v6AKRyjwEUhQ==', list: [{ UNION_ID: 'uDeF0987654321demo' }] } });
  assert.deepEqual(hits.map((h) => [h.path, h.why, h.secret]), [
    ['$.data.sessionKey', 'key sessionKey', true],
    ['$.data.list[0].UNION_ID', 'key UNION_ID', true],
  ]);
  for (const h of hits) assert.ok(!h.shown.includes('Nczf5v6') && !h.shown.includes('0987654321'), h.shown);
});

test('personal data by shape under any key, and by key unless already masked', () => {
  const hits = findSensitive({ contact: '13812345678', note: 'id 11010519491231002X', phone: '138****5678', mobile: '021-1234', card: '6222021234567890128', mail: 'zhang.san@example.com' });
  const byPath = Object.fromEntries(hits.map((h) => [h.path, h]));
  assert.equal(byPath['$.contact']?.shown, '138****5678');
  assert.equal(byPath['$.card']?.why, 'shape bank_card');
  assert.equal(byPath['$.mail']?.shown, 'z********@example.com');
  assert.equal(byPath['$.phone'], undefined, 'a masked phone is fine');
  assert.equal(byPath['$.mobile']?.why, 'key mobile', 'an unmasked value under a personal key counts even without the shape');
  assert.equal(byPath['$.note'], undefined, 'a whole-value detector: text around an ID is not one value');
});

test('ordinary answers have no hits: order numbers, timestamps, openid', () => {
  assert.deepEqual(findSensitive({ code: 0, order: 'E20241001', ts: 1714037060123, openid: 'oAbC1234567890demo0000000001', price_fen: 1990, empty_phone: null, phone: '' }), []);
});
