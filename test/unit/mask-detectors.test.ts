import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { detect } from '../../gateway/masking/detectors.js';
import { maskJsonBuffer } from '../../gateway/masking/json-mask.js';
import type { MaskDetector } from '../../gateway/types/policy.js';

const ALL: MaskDetector[] = ['cn_mobile', 'cn_idcard', 'bank_card', 'email'];

function only(d: MaskDetector): (s: string) => string | undefined {
  return (s) => detect([d], s);
}

test('cn_mobile: a whole mainland mobile number, optionally with +86/86/0086 and 3-4-4 grouping', () => {
  const m = only('cn_mobile');
  assert.equal(m('13812345678'), '138****5678');
  assert.equal(m('19912345678'), '199****5678');
  assert.equal(m('+8613812345678'), '+86138****5678');
  assert.equal(m('+86 13812345678'), '+86 138****5678');
  assert.equal(m('0086-13812345678'), '0086-138****5678');
  assert.equal(m('8613812345678'), '86138****5678');
  assert.equal(m('138 1234 5678'), '138******5678');
  assert.equal(m('138-1234-5678'), '138******5678');
});

test('cn_mobile near-misses are left alone', () => {
  const m = only('cn_mobile');
  for (const s of [
    '12345678901', // second digit 2
    '11012345678', // second digit 1
    '138123456789', // 12 digits
    '1381234567', // 10 digits
    '023-12345678', // landline
    '138 1234-5678', // mixed separators
    ' 13812345678', // stray separator
    '+1 13812345678', // other country code
    'tel:13812345678', // not the whole value
    '13812345678x',
    '２３８１２３４５６７８', // full-width digits
  ]) {
    assert.equal(m(s), undefined, s);
  }
});

test('cn_idcard: 18 characters, region digit, real birth date, MOD 11-2 check character', () => {
  const m = only('cn_idcard');
  assert.equal(m('11010519491231002X'), '110105********002X');
  assert.equal(m('11010519491231002x'), '110105********002x');
  assert.equal(m('440304199003071248'), '440304********1248');
  assert.equal(m('320102200002294567'), '320102********4567'); // 29 February of a leap year
});

test('cn_idcard near-misses are left alone', () => {
  const m = only('cn_idcard');
  for (const s of [
    '110105194912310021', // wrong check digit
    '440304199003071249', // wrong check digit
    '320102200102294564', // 29 February 2001 does not exist (check digit right for the digits)
    '440304199013071246', // month 13
    '440304189003071243', // born before 1900
    '440304209903071242', // born in the future
    '940304199003071248', // region digit 9
    '11010519491231002', // 17 characters
    '110105491231002', // the 15-digit form
    '11010519491231002Y',
  ]) {
    assert.equal(m(s), undefined, s);
  }
});

test('bank_card: 13-19 digits, scheme first digit, Luhn; spaces allowed between groups', () => {
  const m = only('bank_card');
  assert.equal(m('6222021234567894'), '622202******7894');
  assert.equal(m('4111 1111 1111 1111'), '411111******1111');
  assert.equal(m('5555555555554444'), '555555******4444');
  assert.equal(m('378282246310005'), '378282*****0005');
  assert.equal(m('6212345678901234569'), '621234*********4569');
  assert.equal(m('4222222222222'), '422222***2222'); // 13 digits, Visa
});

test('bank_card near-misses are left alone: Luhn failures, timestamps, order numbers', () => {
  const m = only('bank_card');
  for (const s of [
    '6222021234567895', // Luhn fails
    '4111111111111112', // Luhn fails
    '1700000000004', // millisecond timestamp that passes Luhn
    '1700000000000000', // microseconds
    '1700000000000000000', // nanoseconds
    '2023112612345670', // date-prefixed order number that passes Luhn
    '0000000000000000', // leading zero
    '8888888888888888', // first digit 8
    '5222222222222', // 13 digits not starting with 4
    '62220212345678941234', // 20 digits
    '6222-0212-3456-7894', // dashes are not card grouping
    '6222  0212 3456 7894', // double space
  ]) {
    assert.equal(m(s), undefined, s);
  }
});

test('email: a plain address, first character of the local part and the domain kept', () => {
  const m = only('email');
  assert.equal(m('alice@example.com'), 'a****@example.com');
  assert.equal(m('a.b+tag@mail.example.com.cn'), 'a******@mail.example.com.cn');
  assert.equal(m('ab@qq.com'), 'a*@qq.com');
  for (const s of ['alice@localhost', 'alice@', '@example.com', 'alice example.com', 'Alice <alice@example.com>', 'a@b@example.com', `${'a'.repeat(65)}@example.com`]) {
    assert.equal(m(s), undefined, s);
  }
});

test('detectors look at strings, numbers and tokens inside text whatever their key, never at keys', () => {
  const mask = compileMaskProfile({
    name: 'detect',
    drop: [],
    partial: [],
    replace: [],
    hash: [],
    detect: ALL,
    content_types: [],
    stream_above: 1 << 20,
    pos: { file: 'p.yaml', line: 1, col: 1, path: 'mask_profiles.detect' },
  });
  const body = Buffer.from(
    JSON.stringify({
      a: '13812345678',
      n: 13812345678,
      '13812345678': 'key is not a value',
      text: 'call 13812345678',
      order_id: '2023112612345670',
      ts: '1700000000004',
      list: ['11010519491231002X', { deep: ['alice@example.com', '6222021234567894'] }],
      esc: '\u0031\u0033812345678',
    }),
  );
  assert.deepEqual(JSON.parse(maskJsonBuffer(mask, body).body.toString()), {
    a: '138****5678',
    n: '138****5678',
    '13812345678': 'key is not a value',
    text: 'call 138****5678',
    order_id: '2023112612345670',
    ts: '1700000000004',
    list: ['110105********002X', { deep: ['a****@example.com', '622202******7894'] }],
    esc: '138****5678',
  });
  // A number is masked to a string; numbers that are not plain digits, and short ones, stay.
  assert.equal(maskJsonBuffer(mask, Buffer.from('[13812345678, -13812345678, 1.3812345678e10, 12345, 6222021234567894]')).body.toString(), '["138****5678", -13812345678, 1.3812345678e10, 12345, "622202******7894"]');
  // Tokens inside text: several, in Chinese text, with separators; digits inside a word are not a token.
  assert.equal(
    maskJsonBuffer(mask, Buffer.from('{"note":"电话13812345678，备用 +86 139-1234-5678；id abc13812345678 mail bob@example.com"}')).body.toString(),
    '{"note":"电话138****5678，备用 +86 139******5678；id abc13812345678 mail b**@example.com"}',
  );
  // Written with escapes, still recognised.
  assert.equal(maskJsonBuffer(mask, Buffer.from('["\\u0031\\u00338\\u0031\\u0032345678"]')).body.toString(), '["138****5678"]');
});
