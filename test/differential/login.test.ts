// The login endpoint tells `identity.login.upstream` (the real backend) who logged in. Only the
// identity WeChat verified may reach it: a client's own `openid`, `unionid` or `session_key` body
// fields (in any naming style) or identity headers must never be what the backend reads.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_KINDS, type BackendReport } from '../helpers/backends.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { startStand, WX_APP_SECRET, type Stand } from './setup.js';

const FORGED = ['o_victim', 'u_victim', 'SK-CLIENT'];

for (const kind of BACKEND_KINDS) {
  describe(`login: ${kind}`, () => {
    let wechat: FakeWechat;
    let s: Stand;
    let n = 0;
    before(async () => {
      wechat = await startFakeWechat({ secret: WX_APP_SECRET });
      s = await startStand(kind, { login: { apiBase: wechat.url, appid: wechat.appid } });
    });
    after(async () => {
      await s?.close();
      await wechat?.close();
    });

    /** A fresh code WeChat will exchange for `openid`. */
    const code = (openid: string): string => {
      const c = `code-${kind}-${++n}`;
      wechat.codes.set(c, { openid, session_key: `wx-session-key-${n}`, unionid: `u_${openid}` });
      return c;
    };
    const loginCalls = (seen: BackendReport[]) => seen.filter((r) => r.path === '/api/users/login');

    test('client body fields named like identity fields never reach the login upstream as identity', async () => {
      const spellings: Record<string, string>[] = [
        { openid: 'o_victim', unionid: 'u_victim', session_key: 'SK-CLIENT' },
        { OpenID: 'o_victim', unionId: 'u_victim', sessionKey: 'SK-CLIENT' },
        { open_id: 'o_victim', UNIONID: 'u_victim', SESSION_KEY: 'SK-CLIENT' },
      ];
      for (const fields of spellings) {
        const seen = await s.during(async () => {
          const res = await s.send({
            method: 'POST',
            target: '/wx/login',
            headers: [['Content-Type', 'application/json'], ['X_WX_OpenID', 'o_victim'], ['X-WX-UnionID', 'u_victim']],
            body: JSON.stringify({ code: code('o_real'), ...fields }),
          });
          assert.ok(res.status === 200 || res.status === 400, `${JSON.stringify(fields)}: ${res.status} ${res.text}`);
        });
        for (const r of loginCalls(seen)) {
          assert.equal(r.openid, 'o_real');
          for (const forged of FORGED) assert.ok(!r.body.includes(forged) && !JSON.stringify(r.headers).includes(forged), `${forged} reached the login upstream: ${r.body}`);
        }
      }
    });

    test('allowed traffic still works: a login tells the backend the verified openid and passes other fields on', async () => {
      const seen = await s.during(async () => {
        const res = await s.send({ method: 'POST', target: '/wx/login', headers: [['Content-Type', 'application/json']], body: JSON.stringify({ code: code('o_mei'), invite: 'INV-7' }) });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json<{ openid: string }>().openid, 'o_mei');
      });
      const calls = loginCalls(seen);
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.openid, 'o_mei');
      assert.equal(calls[0]!.method, 'POST');
      assert.deepEqual(JSON.parse(calls[0]!.body), { invite: 'INV-7' });
    });
  });
}
