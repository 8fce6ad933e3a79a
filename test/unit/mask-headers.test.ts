// What a profile does to response headers and Set-Cookie lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { maskHeaders } from '../../gateway/masking/header-rules.js';
import type { MaskProfileConfig } from '../../gateway/types/policy.js';

function profile(over: Partial<MaskProfileConfig> = {}): MaskProfileConfig {
  return {
    name: 'h',
    drop: [{ kind: 'key', key: 'session_key' }, { kind: 'path', path: ['data', 'token'], text: '$.data.token' }],
    partial: [{ target: { kind: 'key', key: 'phone' }, rule: { keep_start: 3, keep_end: 4, char: '*' } }],
    replace: [{ target: { kind: 'key', key: 'nickname' }, value: '已隐藏' }, { target: { kind: 'key', key: 'address' }, value: '[hidden]' }],
    hash: [{ kind: 'key', key: 'openid' }],
    hash_key: 'k3y',
    detect: ['cn_mobile'],
    content_types: [],
    stream_above: 1 << 20,
    headers: { drop: ['x-debug-user'], drop_cookies: ['sid'] },
    pos: { file: 'p.yaml', line: 1, col: 1, path: 'mask_profiles.h' },
    ...over,
  };
}
const m = compileMaskProfile(profile());
const run = (mask: typeof m, headers: Record<string, string | string[] | undefined>) => maskHeaders(mask.headers, headers, mask.hashKey);
const hmac = (text: string): string => createHmac('sha256', 'k3y').update(text).digest('hex');

test('listed headers go, headers named like a key rule get its rule, the rest stay', () => {
  const out = run(m, {
    'x-debug-user': 'alice',
    'x_debug_user': 'alice',
    'session-key': 'SK',
    'x-session-key': 'SK',
    'x-sessionkey': 'SK',
    'x-phone': ['13812345678', '13912345678'],
    'x-openid': 'o-1',
    'x-address': '1 Main St',
    'x-nickname': 'Bob',
    'x-token': 'path rules do not reach headers',
    'x-trace': '13812345678',
    date: 'Tue, 01 Dec 2026 10:00:00 GMT',
  });
  assert.deepEqual(out, {
    'x-phone': ['138****5678', '139****5678'],
    'x-openid': hmac('o-1'),
    'x-address': '[hidden]',
    'x-token': 'path rules do not reach headers',
    'x-trace': '13812345678',
    date: 'Tue, 01 Dec 2026 10:00:00 GMT',
  });
});

test('Set-Cookie lines go whole when the cookie is named like a key rule or listed', () => {
  const out = run(m, { 'set-cookie': ['session_key=SK; Path=/', ' SessionKey = SK2', 'sid=1; HttpOnly', 'SID=2', 'theme=dark', 'sidebar=open'] });
  assert.deepEqual(out, { 'set-cookie': ['theme=dark', 'sidebar=open'] });
  assert.deepEqual(run(m, { 'set-cookie': 'session_key=SK' }), {});
  assert.deepEqual(run(m, { 'set-cookie': 'theme=dark' }), { 'set-cookie': 'theme=dark' });
});

test('the headers that frame the answer are never touched, and an untouched set is the same object', () => {
  const framing = compileMaskProfile(profile({ drop: [{ kind: 'key', key: 'content_length' }, { kind: 'key', key: 'request_id' }] }));
  const headers = { 'content-length': '10', 'content-type': 'application/json', 'x-request-id': 'r1', 'transfer-encoding': 'chunked', 'content-encoding': 'gzip' };
  assert.equal(run(framing, headers), headers);
});

test('key_match: exact compares header and cookie names as written (less case, which HTTP ignores)', () => {
  const exact = compileMaskProfile(profile({ key_match: 'exact', drop: [{ kind: 'key', key: 'session_key' }, { kind: 'key', key: 'AuthToken' }], headers: { drop: ['x-debug-user'], drop_cookies: [] } }));
  assert.deepEqual(run(exact, { 'x-session-key': 'a', session_key: 'b', 'x-debug_user': 'c', authtoken: 'd', 'set-cookie': ['SessionKey=1', 'session_key=2', 'authtoken=3', 'AuthToken=4'] }), {
    'x-session-key': 'a',
    'x-debug_user': 'c',
    'set-cookie': ['SessionKey=1', 'authtoken=3'],
  });
});
