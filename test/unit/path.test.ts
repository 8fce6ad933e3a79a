import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchKey, normalisePath, parentPrefix } from '../../gateway/net/path.js';

test('paths already in normal form pass through unchanged', () => {
  for (const p of ['/', '/api/user', '/api/user/', '/a;v=1/b', '/a/.hidden', '/a/v1.2/b.json', '/caf%C3%A9', '/API/User']) {
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
    ['/a/...', /ends in "." or a space/],
    ['/admin./x', /ends in "." or a space/],
    ['/admin%2e/x', /ends in "." or a space/],
    ['/admin%2E%2E%2E', /ends in "." or a space/],
    ['/admin%20/x', /ends in "." or a space/],
    ['/admin%20', /ends in "." or a space/],
    ['/admin.;x/y', /ends in "." or a space/],
    ['api', /start with/],
    ['', /start with/],
  ];
  for (const [raw, why] of cases) {
    const r = normalisePath(raw);
    assert.equal(r.ok, false, raw);
    if (!r.ok) assert.match(r.why, why, raw);
  }
});

test('";" path parameters: refused by default, stripped, or kept, raw and encoded alike', () => {
  for (const raw of ['/api/internal;x/y', '/api/internal%3Bx/y', '/api/internal%3bx/y', '/a;', '/;/a', '/a/b;jsessionid=1']) {
    const r = normalisePath(raw, 'reject');
    assert.equal(r.ok, false, raw);
    if (!r.ok) assert.match(r.why, /";" path parameters/, raw);
  }
  const stripped: [string, string][] = [
    ['/api/internal;x/y', '/api/internal/y'],
    ['/api/internal%3Bx/y', '/api/internal/y'],
    ['/api/internal%3bx=%41/y', '/api/internal/y'],
    ['/a/b;jsessionid=1', '/a/b'],
    ['/a;x/../b', '/b'],
    ['/;x/a', '/a'],
    ['/a;x;y/b;z/', '/a/b/'],
  ];
  for (const [raw, want] of stripped) assert.deepEqual(normalisePath(raw, 'strip'), { ok: true, path: want }, raw);
  assert.deepEqual(normalisePath('/a;v=1/b', 'keep'), { ok: true, path: '/a;v=1/b' });
  assert.deepEqual(normalisePath('/a%3bv/b', 'keep'), { ok: true, path: '/a%3Bv/b' });
  // Stripping never turns a refused spelling into an accepted one.
  for (const raw of ['/api/..;/admin', '/admin.;x/y', '/a;x%2f/b']) assert.equal(normalisePath(raw, 'strip').ok, false, raw);
});

test('the match key folds case, and the non-ASCII letters backends equate with ASCII ones', () => {
  assert.equal(matchKey('/API/Internal/Y'), '/api/internal/y');
  assert.equal(matchKey('/caf%C3%A9'), '/caf%c3%a9');
  assert.equal(matchKey('/adm%C4%B1n/x'), '/admin/x', 'dotless i: Java and .NET upper-case it to I');
  assert.equal(matchKey('/%C4%B0NTERNAL'), '/internal', 'dotted capital I');
  assert.equal(matchKey('/%C5%BFecret'), '/secret', 'long s');
  assert.equal(matchKey('/%E2%84%AAey'), '/key', 'Kelvin sign');
  // Whatever spelling normalises, every one of them has the same key.
  const keys = new Set(['/api/ME/profile', '/api/me/Profile', '/%41PI/me/profile', '/api/%4de/profile'].map((p) => {
    const n = normalisePath(p, 'reject');
    assert.ok(n.ok, p);
    return matchKey(n.path);
  }));
  assert.deepEqual([...keys], ['/api/me/profile']);
});

test('a trailing "/" does not change the key, and the parents of a key are its segment boundaries', () => {
  assert.equal(matchKey('/X/'), '/x');
  assert.equal(matchKey('/x'), '/x');
  assert.equal(matchKey('/'), '/');
  const chain: string[] = [];
  for (let p: string | undefined = '/a/b/c'; p !== undefined; p = parentPrefix(p)) chain.push(p);
  assert.deepEqual(chain, ['/a/b/c', '/a/b', '/a', '/']);
});
