import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalisePath } from '../../gateway/net/path.js';

test('paths already in normal form pass through unchanged', () => {
  for (const p of ['/', '/api/user', '/api/user/', '/a;v=1/b', '/a/.hidden', '/a/...', '/caf%C3%A9']) {
    assert.deepEqual(normalisePath(p), { ok: true, path: p }, p);
  }
});

test('bypass spellings normalise to the path the backend would serve', () => {
  const cases: [string, string][] = [
    ['/api/../admin/x', '/admin/x'],
    ['/%61dmin/x', '/admin/x'],
    ['/%61%64%6D%69%6E/x', '/admin/x'],
    ['//admin//x/', '/admin/x/'],
    ['/api/./../admin/x', '/admin/x'],
    ['/a/%2e%2e/admin', '/admin'],
    ['/a/%2E/b', '/a/b'],
    ['/a/b/..', '/a/'],
    ['/a/./b/.', '/a/b/'],
    ['/./', '/'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a%20b', '/a%20b'],
  ];
  for (const [raw, want] of cases) assert.deepEqual(normalisePath(raw), { ok: true, path: want }, raw);
});

test('paths that a backend could read another way are refused with the reason', () => {
  const cases: [string, RegExp][] = [
    ['/admin%2fx', /encoded "\/"/],
    ['/admin%2Fx', /encoded "\/"/],
    ['/admin%5cx', /encoded "\\"/],
    ['/admin\\x', /backslash/],
    ['/a%00b', /NUL/],
    ['/..', /above the root/],
    ['/a/../../b', /above the root/],
    ['/%2e%2e/etc', /above the root/],
    ['/api/..;/admin', /dot segment with parameters/],
    ['/api/.;x/admin', /dot segment with parameters/],
    ['/a%zz', /invalid percent-escape/],
    ['/a%4', /invalid percent-escape/],
    ['/a#b', /"#"/],
    ['api', /start with/],
    ['', /start with/],
  ];
  for (const [raw, why] of cases) {
    const r = normalisePath(raw);
    assert.equal(r.ok, false, raw);
    if (!r.ok) assert.match(r.why, why, raw);
  }
});
