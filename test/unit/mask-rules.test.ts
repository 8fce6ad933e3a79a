import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { MaskError, maskJsonBuffer, maskValue } from '../../gateway/masking/json-mask.js';
import { compileLogRedactor } from '../../gateway/masking/redact.js';
import type { MaskProfileConfig, MaskTarget } from '../../gateway/types/policy.js';

function target(text: string): MaskTarget {
  if (!text.startsWith('$.')) return { kind: 'key', key: text };
  return { kind: 'path', path: text.slice(2).replace(/\[\*\]/g, '.*').split('.'), text };
}

function profile(p: { drop?: string[]; partial?: [string, number, number, string?][]; replace?: Record<string, string>; hash?: string[]; detect?: MaskProfileConfig['detect'] }): MaskProfileConfig {
  return {
    name: 'test',
    drop: (p.drop ?? []).map(target),
    partial: (p.partial ?? []).map(([t, keep_start, keep_end, char]) => ({ target: target(t), rule: { keep_start, keep_end, char: char ?? '*' } })),
    replace: Object.entries(p.replace ?? {}).map(([t, value]) => ({ target: target(t), value })),
    hash: (p.hash ?? []).map(target),
    hash_key: 'k3y',
    detect: p.detect ?? [],
    content_types: [],
    stream_above: 1 << 20,
    pos: { file: 'policy.yaml', line: 1, col: 1, path: 'mask_profiles.test' },
  };
}

const wx = compileMaskProfile(profile({ drop: ['session_key', 'unionid'], partial: [['phone', 3, 4], ['idcard', 6, 4]] }));

function masked(mask: ReturnType<typeof compileMaskProfile>, json: string): string {
  return maskJsonBuffer(mask, Buffer.from(json)).body.toString();
}

const hmac = (text: string): string => createHmac('sha256', 'k3y').update(text).digest('hex');

test('drop removes the key at any depth and inside arrays, keeping the rest byte for byte', () => {
  assert.equal(masked(wx, '{"session_key":"s","a":1}'), '{"a":1}');
  assert.equal(masked(wx, '{"a":1,"session_key":"s"}'), '{"a":1}');
  assert.equal(masked(wx, '{"a":1,"session_key":"s","b":2}'), '{"a":1,"b":2}');
  assert.equal(masked(wx, '{"session_key":"s","unionid":"u"}'), '{}');
  assert.equal(masked(wx, '{ "session_key" : {"x":[1,{"y":2}]} , "b" : 2 }'), '{   "b" : 2 }');
  assert.equal(masked(wx, '{"data":{"list":[{"unionid":"u","id":1},{"id":2,"unionid":"u"}]}}'), '{"data":{"list":[{"id":1},{"id":2}]}}');
  assert.equal(masked(wx, '[[{"session_key":1}]]'), '[[{}]]');
});

test('partial keeps the ends and replaces each code point in between with one char', () => {
  assert.equal(masked(wx, '{"phone":"13812345678"}'), '{"phone":"138****5678"}');
  assert.equal(masked(wx, '{"idcard":"11010519491231002X"}'), '{"idcard":"110105********002X"}');
  // Too short to keep anything: every code point replaced, same length.
  assert.equal(masked(wx, '{"phone":"1234567"}'), '{"phone":"*******"}');
  assert.equal(masked(wx, '{"phone":""}'), '{"phone":""}');
  // Code points, not UTF-16 units: an emoji is one character.
  assert.equal(masked(wx, '{"phone":"😀😀😀中文字符😀😀😀"}'), '{"phone":"😀😀😀***符😀😀😀"}');
  const m = compileMaskProfile(profile({ partial: [['name', 1, 1, '#']] }));
  assert.equal(masked(m, '{"name":"😀张三丰😀"}'), '{"name":"😀###😀"}');
  assert.equal(masked(m, '{"name":"张三"}'), '{"name":"##"}');
});

test('numbers under partial are masked as their source text, giving a string', () => {
  assert.equal(masked(wx, '{"phone":13812345678}'), '{"phone":"138****5678"}');
  assert.equal(masked(wx, '{"phone":-1.5e3}'), '{"phone":"******"}');
  assert.equal(masked(wx, '{"phone":13812345678.25}'), '{"phone":"138*******8.25"}');
});

test('objects, arrays, booleans and null under partial or hash become four chars', () => {
  assert.equal(masked(wx, '{"phone":{"a":"13812345678"},"idcard":[1,2],"x":1}'), '{"phone":"****","idcard":"****","x":1}');
  assert.equal(masked(wx, '{"phone":true,"idcard":null}'), '{"phone":"****","idcard":"****"}');
  const h = compileMaskProfile(profile({ hash: ['openid'] }));
  assert.equal(masked(h, '{"openid":{"deep":1}}'), '{"openid":"****"}');
});

test('replace puts the given string in place of any value', () => {
  const m = compileMaskProfile(profile({ replace: { token: '[hidden]', quote: 'a "b"' } }));
  assert.equal(masked(m, '{"token":"abc","n":{"token":[1,{"token":2}]},"quote":null}'), '{"token":"[hidden]","n":{"token":"[hidden]"},"quote":"a \\"b\\""}');
});

test('hash is HMAC-SHA256 hex of the decoded string or the number text', () => {
  const m = compileMaskProfile(profile({ hash: ['openid', 'uid'] }));
  assert.equal(masked(m, '{"openid":"o\\u0041x","uid":12345}'), `{"openid":"${hmac('oAx')}","uid":"${hmac('12345')}"}`);
});

test('paths match only where they point; * is any array element or object member', () => {
  const m = compileMaskProfile(profile({ partial: [['$.data.user.phone', 3, 4]], drop: ['$.list[*].idcard', '$.extra.*.secret'] }));
  assert.equal(
    masked(m, '{"phone":"13812345678","data":{"phone":"13812345678","user":{"phone":"13812345678"}}}'),
    '{"phone":"13812345678","data":{"phone":"13812345678","user":{"phone":"138****5678"}}}',
  );
  assert.equal(masked(m, '{"list":[{"idcard":"x","n":1},{"n":2,"idcard":"y"}],"idcard":"z"}'), '{"list":[{"n":1},{"n":2}],"idcard":"z"}');
  assert.equal(masked(m, '{"extra":{"a":{"secret":1,"k":1},"b":{"secret":2}},"secret":3}'), '{"extra":{"a":{"k":1},"b":{}},"secret":3}');
  // `[*]` is any member of an object too; it still takes one level.
  assert.equal(masked(m, '{"list":{"a":{"idcard":"x"}}}'), '{"list":{"a":{}}}');
  assert.equal(masked(m, '{"list":{"idcard":"x"}}'), '{"list":{"idcard":"x"}}');
  const all = compileMaskProfile(profile({ drop: ['$.items[*]'] }));
  assert.equal(masked(all, '{"items":[1, {"a":2} ,3],"k":[1]}'), '{"items":[  ],"k":[1]}');
});

test('the strongest rule wins when several reach one value: drop > replace > hash > partial', () => {
  const m = compileMaskProfile(profile({ partial: [['phone', 3, 4]], drop: ['$.a.phone'], replace: { '$.c.phone': 'x' }, hash: ['$.b.phone', '$.c.phone'] }));
  assert.equal(
    masked(m, '{"a":{"phone":"13812345678"},"b":{"phone":"1"},"c":{"phone":"1"},"phone":"13812345678"}'),
    `{"a":{},"b":{"phone":"${hmac('1')}"},"c":{"phone":"x"},"phone":"138****5678"}`,
  );
});

test('keys are compared decoded, and every duplicate is masked', () => {
  assert.equal(masked(wx, '{"session\\u005fkey":"s","ph\\u006fne":"13812345678"}'), '{"ph\\u006fne":"138****5678"}');
  assert.equal(masked(wx, '{"phone":"13812345678","phone":"13987654321","session_key":"a","session_key":"b"}'), '{"phone":"138****5678","phone":"139****4321"}');
});

test('everything the rules do not touch passes verbatim, big integers included', () => {
  const body = '{ "id" : 12345678901234567890123, "f": 1.0e+2, "s":"\\ud83d\\ude00\\n", "phone":"13812345678" }';
  assert.equal(masked(wx, body), '{ "id" : 12345678901234567890123, "f": 1.0e+2, "s":"\\ud83d\\ude00\\n", "phone":"138****5678" }');
  const untouched = Buffer.from('{"a":[1,2,{"b":null}]}');
  const r = maskJsonBuffer(compileMaskProfile(profile({ detect: ['email'] })), untouched);
  assert.equal(r.changed, false);
  assert.equal(r.body, untouched);
});

test('invalid JSON throws MaskError whose reason does not quote the body', () => {
  for (const bad of ['{"phone":"13812345678",}', '{"phone":13812345678', '{"phone":"13812345678"}x', '{"phone":01}', '{"phone":"\x01"}', '{"phone" "b"}', '["phone" 2]', '{"phone":tru}', '{"phone":"\\q"}', '{"phone":1} x', '{"phone":[}']) {
    assert.throws(
      () => maskJsonBuffer(wx, Buffer.from(bad)),
      (err: unknown) => err instanceof MaskError && !err.why.includes('138') && !err.message.includes('138'),
      bad,
    );
  }
  assert.equal(maskJsonBuffer(wx, Buffer.alloc(0)).body.length, 0);
  // The fast path does not parse: a body that cannot hold a masked key is passed as it is.
  assert.equal(maskJsonBuffer(wx, Buffer.from('[01]')).changed, false);
});

test('a UTF-8 byte order mark is accepted and removed', () => {
  assert.equal(masked(wx, '\ufeff{"phone":"13812345678"}'), '{"phone":"138****5678"}');
});

test('maskValue applies the same rules to parsed values without touching the input', () => {
  const m = compileMaskProfile(profile({ drop: ['session_key', '$.list[*].secret'], partial: [['phone', 3, 4]], hash: ['openid'], detect: ['email'] }));
  const input = { session_key: 's', openid: 'o1', user: { phone: 13812345678, mail: 'alice@example.com' }, list: [{ secret: 1, ok: true }], ['__proto__']: 'x' };
  const copy = structuredClone(input);
  assert.deepEqual(maskValue(m, input), { openid: hmac('o1'), user: { phone: '138****5678', mail: 'a****@example.com' }, list: [{ ok: true }], ['__proto__']: 'x' });
  assert.deepEqual(input, copy);
  const parsed = JSON.parse('{"__proto__":{"phone":"13812345678"}}') as unknown;
  assert.equal(JSON.stringify(maskValue(m, parsed)), '{"__proto__":{"phone":"138****5678"}}');
});

test('keys lists every key a rule names (a path by its last name), in its usual spellings unless names match exactly', () => {
  const cfg = profile({ drop: ['session_key', '$.list[*].idcard', '$.secrets.*'], partial: [['phone', 3, 4]] });
  const exact = compileMaskProfile({ ...cfg, key_match: 'exact' });
  assert.deepEqual([...exact.keys].sort(), ['idcard', 'phone', 'secrets', 'session_key']);
  const m = compileMaskProfile(cfg);
  for (const k of ['idcard', 'IDCARD', 'phone', 'Phone', 'secrets', 'session_key', 'sessionKey', 'SessionKey', 'SESSION_KEY', 'session-key', 'sessionkey']) assert.ok(m.keys.has(k), k);
});

test('log redaction hides masked keys up to three levels deep, and body fields', () => {
  const m = compileMaskProfile(profile({ drop: ['session_key', 'a-b', 'we"ird'] }));
  const redact = compileLogRedactor([m]);
  const given = { session_key: 1, x: { session_key: 2, y: { session_key: 3 } }, 'a-b': 4, 'we"ird': 5, err: { body: 'upstream said 13812345678' } };
  const line = redact.fields(given);
  assert.deepEqual([line.session_key, line.x, line['a-b'], line['we"ird'], line.err], ['[redacted]', { session_key: '[redacted]', y: { session_key: '[redacted]' } }, '[redacted]', '[redacted]', { body: '[redacted]' }]);
  assert.equal(given.session_key, 1, 'the caller\'s object is never changed');
});

test('log text hides masked keys quoted in text and whatever the detectors recognise', () => {
  const m = compileMaskProfile(profile({ drop: ['session_key'], detect: ['cn_mobile', 'email', 'bank_card', 'cn_idcard'] }));
  assert.equal(
    compileLogRedactor([m]).text('upstream 500: {"session_key": "a\\"b", "msg":"call 13812345678 or +86 139-1234-5678, mail bob@example.com, card 4111 1111 1111 1111, id 11010519491231002X, order 2023112612345670 at 1700000000004"}'),
    'upstream 500: {"session_key": "[redacted]", "msg":"call 138****5678 or +86 139******5678, mail b**@example.com, card 411111******1111, id 110105********002X, order 2023112612345670 at 1700000000004"}',
  );
  assert.equal(compileLogRedactor([m]).text('on 2026-11-26 13812345678 failed'), 'on 2026-11-26 138****5678 failed');
});
