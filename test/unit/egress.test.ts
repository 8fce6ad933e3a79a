// The egress's pure parts: the circuit's states on a manual clock, the Beijing quota day, when a
// token is renewed, and what the phone endpoint lets the client see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Circuit } from '../../gateway/egress/circuit.js';
import { pino } from 'pino';
import { TokenCache, renewPoint } from '../../gateway/egress/token-cache.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { errcodeOf, readTokenAnswer, tokenAnswer } from '../../gateway/wechat/access-token.js';
import { quotaBudgets, quotaDay } from '../../gateway/wechat/quotas.js';
import { maskPhone, readPhoneAnswer } from '../../gateway/wechat/phone-number.js';

const timing = { baseMs: 1000, maxMs: 4000, threshold: 3 };

test('circuit: closed -> open after the threshold -> half-open single probe -> closed', () => {
  const changes: string[] = [];
  const c = new Circuit(timing, (to) => changes.push(to));
  let t = 0;
  for (let i = 0; i < 2; i++) c.failure(t, false, false);
  assert.equal(c.current, 'closed');
  c.failure(t, false, false);
  assert.equal(c.current, 'open');
  assert.deepEqual(c.admit(t + 400), { ok: false, retryAfterMs: 600 });
  t += 1000;
  assert.deepEqual(c.admit(t), { ok: true, probe: true });
  assert.equal(c.current, 'half_open');
  assert.equal(c.admit(t).ok, false, 'one probe at a time');
  c.success(true);
  assert.equal(c.current, 'closed');
  assert.deepEqual(changes, ['open', 'half_open', 'closed']);
});

test('circuit: a failed probe doubles the backoff up to its maximum; 45009 opens at once', () => {
  const c = new Circuit(timing, () => undefined);
  let t = 0;
  c.failure(t, false, true);
  assert.equal(c.current, 'open');
  const backoffs: number[] = [];
  for (let i = 0; i < 4; i++) {
    const wait = c.admit(t);
    assert.equal(wait.ok, false);
    backoffs.push((wait as { retryAfterMs: number }).retryAfterMs);
    t += backoffs.at(-1)!;
    const probe = c.admit(t);
    assert.deepEqual(probe, { ok: true, probe: true });
    c.failure(t, true, false);
  }
  assert.deepEqual(backoffs, [1000, 2000, 4000, 4000]);
  // A probe that ended without telling lets the next one go.
  t += 4000;
  assert.equal(c.admit(t).ok, true);
  c.abandoned(true);
  assert.equal(c.admit(t).ok, true);
});

test('the quota day is the Beijing calendar day; it resets at 16:00 UTC', () => {
  assert.deepEqual(quotaDay(Date.parse('2026-03-01T15:59:59Z')), { day: '2026-03-01', msToReset: 1000 });
  assert.deepEqual(quotaDay(Date.parse('2026-03-01T16:00:00Z')), { day: '2026-03-02', msToReset: 24 * 3600_000 });
  assert.equal(quotaDay(Date.parse('2026-03-01T08:00:00Z')).day, '2026-03-01');
});

test('policy quotas replace the documented defaults path by path', () => {
  const q = quotaBudgets({ '/cgi-bin/message/custom/send': { per_day: 7 }, '/wxa/x': { per_day: 0 } });
  assert.equal(q.get('/cgi-bin/message/custom/send'), 7);
  assert.equal(q.get('/wxa/x'), 0);
  assert.equal(q.get('/cgi-bin/menu/create'), 1000);
});

test('a 7200 s token is renewed 4 minutes before expiry, inside WeChat\'s 5-minute window; never sooner than 30 s after a renewal', () => {
  const now = 1_000_000;
  assert.equal(renewPoint({ token: 't', expiresAt: now + 7200_000 }, now), now + 7200_000 - 240_000);
  // Asked too early, WeChat gave the same token with 3 minutes left: ask again in 30 s, not at once.
  assert.equal(renewPoint({ token: 't', expiresAt: now + 180_000 }, now), now + 135_000);
  assert.equal(renewPoint({ token: 't', expiresAt: now + 60_000 }, now), now + 45_000);
});

test('token answers: errcodes as numbers or strings, the cached answer in WeChat\'s shape', () => {
  assert.deepEqual(readTokenAnswer({ access_token: 'a', expires_in: 7200 }, 0), { token: 'a', expiresAt: 7200_000 });
  assert.deepEqual(readTokenAnswer({ errcode: '40125', errmsg: 'invalid appsecret' }, 0), { errcode: 40125, errmsg: 'invalid appsecret' });
  assert.equal(errcodeOf({ errcode: 0 }), 0);
  assert.equal(JSON.parse(tokenAnswer({ token: 'a', expiresAt: 10_500 }, 0)).expires_in, 10);
});

test('phone numbers: masked for the client, refused when the watermark names another app', () => {
  assert.equal(maskPhone('13812345678'), '138****5678');
  assert.equal(maskPhone('2025550123'), '202***0123');
  assert.equal(maskPhone('12345'), '*****');
  const info = { phoneNumber: '13812345678', purePhoneNumber: '13812345678', countryCode: '86', watermark: { appid: 'wxaaaaaaaaaaaaaaaa', timestamp: 1 } };
  assert.equal(readPhoneAnswer({ phone_info: info }, 'wxaaaaaaaaaaaaaaaa')?.countryCode, '86');
  assert.equal(readPhoneAnswer({ phone_info: info }, 'wxbbbbbbbbbbbbbbbb'), undefined);
  assert.equal(readPhoneAnswer({}, 'wxaaaaaaaaaaaaaaaa'), undefined);
});

test('token cache: one fetch for concurrent callers; a failure pauses renewals; a rejected token that comes back is forced', async () => {
  const store = new MemoryStore();
  let t = Date.parse('2026-03-01T08:00:00Z');
  const asked: boolean[] = [];
  let answer: () => { token: string; expiresAt: number } = () => ({ token: 'A', expiresAt: t + 7200_000 });
  const results: string[] = [];
  const cache = new TokenCache({
    store,
    appid: 'wx0123456789abcdef',
    now: () => t,
    fetch: async (force) => {
      asked.push(force);
      return answer();
    },
    lockTtlMs: 3000,
    logger: pino({ level: 'silent' }),
    refreshed: (r) => results.push(r),
  });
  try {
    const got = await Promise.all(Array.from({ length: 20 }, () => cache.token()));
    assert.ok(got.every((g) => g.token === 'A'));
    assert.deepEqual(asked, [false]);
    // Due for renewal: served from the cache while it renews.
    t += 7200_000 - 200_000;
    answer = () => {
      throw new Error('WeChat down');
    };
    assert.equal((await cache.token()).token, 'A');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(results, ['ok', 'error']);
    // Within the pause no request goes out; the valid token is still served.
    assert.equal((await cache.token()).token, 'A');
    assert.equal(asked.length, 2);
    t += 2000;
    answer = () => ({ token: 'B', expiresAt: t + 7200_000 });
    assert.equal((await cache.token()).token, 'A');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await cache.token()).token, 'B');
    // WeChat rejects B but stable_token still hands it out: one forced refresh.
    let forcedOnce = false;
    answer = () => (asked.at(-1) && !forcedOnce ? ((forcedOnce = true), { token: 'C', expiresAt: t + 7200_000 }) : { token: 'B', expiresAt: t + 7000_000 });
    const replaced = await Promise.all([cache.replace('B'), cache.replace('B')]);
    assert.deepEqual(replaced.map((r) => r.token), ['C', 'C']);
    assert.deepEqual(asked.slice(-2), [false, true]);
  } finally {
    await store.close();
  }
});
