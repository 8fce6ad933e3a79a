// The mask-profile keys for names and headers, as the policy loader reads and checks them: exact
// diagnostics with file, line, column and key for every bad value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

// BASE line 28 is `defaults: { allow: any }`; the profile goes on the lines after it.
const withProfile = (...lines: string[]): string => edit({ 28: ['defaults: { allow: any }', 'mask_profiles:', ...lines].join('\n') });

test('key_match and headers are read with their defaults', async () => {
  const loaded = await accept(
    withProfile(
      '  wx-user:',
      '    drop: [session_key]',
      '    headers: { drop: [X-Debug-User, x-debug-user], drop_cookies: [sid, sid] }',
      '  exact: { drop: [session_key], key_match: exact }',
    ),
  );
  const wx = loaded.config.mask_profiles.get('wx-user')!;
  assert.equal(wx.key_match, undefined, 'absent: fold');
  assert.deepEqual(wx.headers, { drop: ['x-debug-user'], drop_cookies: ['sid'] });
  const exact = loaded.config.mask_profiles.get('exact')!;
  assert.equal(exact.key_match, 'exact');
  assert.equal(exact.headers, undefined);
});

test('bad key_match and headers values are refused with their line and column', async () => {
  const text = withProfile(
    '  wx-user:',
    '    drop: [session_key]',
    '    key_match: loose',
    '    headers:',
    '      drop: ["bad header", content-length, Transfer-Encoding, x-request-id]',
    '      drop_cookies: ["a=b"]',
    '      mask: [x]',
  );
  expectDiagnostics(await reject(text), [
    { line: 32, col: 16, path: 'mask_profiles.wx-user.key_match', message: ['`loose` is not one of fold, exact'] },
    { line: 34, col: 14, path: 'mask_profiles.wx-user.headers.drop[0]', message: ['header name'] },
    { line: 34, col: 28, path: 'mask_profiles.wx-user.headers.drop[1]', message: ['`content-length` cannot be dropped'] },
    { line: 34, col: 44, path: 'mask_profiles.wx-user.headers.drop[2]', message: ['`Transfer-Encoding` cannot be dropped'] },
    { line: 34, col: 63, path: 'mask_profiles.wx-user.headers.drop[3]', message: ['`x-request-id` cannot be dropped'] },
    { line: 35, col: 22, path: 'mask_profiles.wx-user.headers.drop_cookies[0]', message: ['cookie name'] },
    { line: 36, col: 7, path: 'mask_profiles.wx-user.headers.mask', message: ['unknown key `mask`', 'drop, drop_cookies'] },
  ]);
});

test('a profile that only masks headers is not a profile that masks nothing', async () => {
  const loaded = await accept(withProfile('  cookies-only: { headers: { drop_cookies: [sid] } }', '  nothing: { headers: {} }'));
  const warnings = loaded.warnings.map((d) => d.path);
  assert.deepEqual(warnings, ['mask_profiles.nothing']);
});
