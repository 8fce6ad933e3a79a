// Rule names against the spellings backends use: folded at load, member names folded byte by
// byte as they stream, and the no-parse fast path folding the body before it looks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { maskJsonBuffer, maskValue } from '../../gateway/masking/json-mask.js';
import { createMaskStream } from '../../gateway/masking/json-stream.js';
import { foldName, keySpellings } from '../../gateway/masking/names.js';
import type { MaskProfileConfig } from '../../gateway/types/policy.js';

function profile(over: Partial<MaskProfileConfig> = {}): MaskProfileConfig {
  return {
    name: 'names',
    drop: [{ kind: 'key', key: 'session_key' }, { kind: 'path', path: ['data', 'userInfo', 'secret'], text: '$.data.userInfo.secret' }],
    partial: [{ target: { kind: 'key', key: 'phoneNumber' }, rule: { keep_start: 3, keep_end: 4, char: '*' } }],
    replace: [],
    hash: [],
    detect: [],
    content_types: [],
    stream_above: 1 << 20,
    pos: { file: 'p.yaml', line: 1, col: 1, path: 'mask_profiles.names' },
    ...over,
  };
}
const folded = compileMaskProfile(profile());
const exact = compileMaskProfile(profile({ key_match: 'exact' }));

const masked = (m: typeof folded, json: string): string => maskJsonBuffer(m, Buffer.from(json)).body.toString();

async function streamed(m: typeof folded, json: string): Promise<string> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(Array.from(Buffer.from(json), (b) => Buffer.from([b]))),
    createMaskStream(m),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out).toString();
}

test('foldName lowers ASCII letters and leaves out `_` and `-`; keySpellings lists the usual spellings', () => {
  for (const s of ['session_key', 'sessionKey', 'SessionKey', 'SESSION_KEY', 'session-key', 'Session_Key', '__session__key__']) assert.equal(foldName(s), 'sessionkey', s);
  assert.equal(foldName('Ünïcode_Name'), 'Ünïcodename', 'letters outside ASCII are kept');
  assert.deepEqual(keySpellings('session_key').sort(), ['SESSION_KEY', 'SessionKey', 'session-key', 'sessionKey', 'session_key', 'sessionkey'].sort());
  assert.deepEqual(keySpellings('phoneNumber').sort(), ['PHONE_NUMBER', 'PhoneNumber', 'phone-number', 'phoneNumber', 'phone_number', 'phonenumber'].sort());
});

test('every spelling of a key or path name is masked, buffered and streamed one byte at a time', async () => {
  const input =
    '{"session_key":1,"sessionKey":2,"SessionKey":3,"SESSION_KEY":4,"session-key":5,"Session_Key":6,"sessionkeys":7,' +
    '"PHONE_NUMBER":"13812345678","phone-number":"13912345678","Data":{"user_info":{"Secret":"s","other":1},"UserInfo":{"SECRET":"t"}},' +
    '"session\\u005fKey":8,"x":{"sEsSiOnKeY":9}}';
  const expected = '{"sessionkeys":7,"PHONE_NUMBER":"138****5678","phone-number":"139****5678","Data":{"user_info":{"other":1},"UserInfo":{}},"x":{}}';
  assert.equal(masked(folded, input), expected);
  assert.equal(await streamed(folded, input), expected);
  // key_match: exact: only the names as written.
  const exactOut = masked(exact, input);
  assert.ok(!exactOut.includes('"session_key"') && exactOut.includes('"sessionKey":2') && exactOut.includes('"PHONE_NUMBER":"13812345678"'), exactOut);
  assert.equal(await streamed(exact, input), exactOut);
});

test('the no-parse fast path folds the body first: a renamed key is never skipped', () => {
  // Needles are `"sessionkey"` and `"phonenumber"`: present only once the body is folded.
  const out = maskJsonBuffer(compileMaskProfile(profile({ drop: [{ kind: 'key', key: 'session_key' }] })), Buffer.from('{"a":1,"SessionKey":"s"}'));
  assert.equal(out.body.toString(), '{"a":1}');
  const same = Buffer.from('{"a":1,"session":"k","key":2}');
  const untouched = maskJsonBuffer(folded, same);
  assert.equal(untouched.changed, false);
  assert.equal(untouched.body, same, 'the very buffer, unparsed');
});

test('a key with a separator between every letter still matches; past that length it is not decoded', async () => {
  const spread = 's_e_s_s_i_o_n_k_e_y';
  assert.equal(masked(folded, `{"${spread}":1,"k":2}`), '{"k":2}');
  assert.equal(await streamed(folded, `{"${spread}":1,"k":2}`), '{"k":2}');
  const longer = `{"${'_'.repeat(30)}sessionkey":1}`;
  assert.equal(masked(folded, longer), longer);
});

test('maskValue folds names the same way', () => {
  assert.deepEqual(maskValue(folded, { SessionKey: 's', Data: { USER_INFO: { secret: 1, keep: 2 } }, phone_number: '13812345678' }), {
    Data: { USER_INFO: { keep: 2 } },
    phone_number: '138****5678',
  });
  assert.deepEqual(maskValue(exact, { SessionKey: 's' }), { SessionKey: 's' });
});
