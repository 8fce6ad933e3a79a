// Revocation as the identity guard sees it: a wxgw session token whose signature is cached still
// costs its one store get (`checking`, never charged as an anonymous `pending`), a logout ends it,
// a backend's own tokens are never looked up, and a store that cannot answer refuses rather than
// letting an ended session back in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import { compileRevocation, sessionRecordKey } from '../../gateway/identity/sessions.js';
import { compileIdentity } from '../../gateway/identity/verify.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { StoreUnavailableError, type Store } from '../../gateway/store/store.js';
import type { IdentityConfig } from '../../gateway/types/policy.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'identity' };
const SESSION = { signing_key: 'session-signing-key-that-is-long-enough-0123', ttl: 3_600_000, issuer: 'wxgw' };
const BACKEND_SECRET = 'legacy-backend-hs-secret-0123456789abcdef';

function identity(): IdentityConfig {
  return {
    session: SESSION,
    jwt: { key: { kind: 'secret', secret: BACKEND_SECRET }, openid_claim: 'openid', clock_tolerance: 30_000, issuer: 'legacy' },
    token: { header: 'authorization' },
    upstream_header: 'x-wx-openid',
    unionid_header: 'x-wx-unionid',
    pos,
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A store whose gets are counted, and fail while `down`. */
function counted(inner: Store): Store & { gets: number; down: boolean } {
  const s = Object.assign(Object.create(inner) as Store, { gets: 0, down: false });
  s.get = async (key: string) => {
    s.gets++;
    if (s.down) throw new StoreUnavailableError('the store is down (test)');
    return inner.get(key);
  };
  return s as Store & { gets: number; down: boolean };
}

async function setup(scope: 'session' | 'user') {
  let now = Date.parse('2026-12-01T10:00:00.250Z');
  const clock = () => now;
  const store = counted(new MemoryStore());
  const signer = await SessionSigner.create(SESSION, { now: clock });
  const revocation = compileRevocation(store, scope, SESSION.ttl, clock);
  const verifier = await compileIdentity(identity(), { signer, now: clock, revocation });
  return { store, signer, revocation, verifier, advance: (ms: number) => (now += ms) };
}

test('scope session: a cached token is `checking` (one get), and refused as session_revoked once logged out', async () => {
  const { store, signer, revocation, verifier } = await setup('session');
  const { token } = await signer.sign({ openid: 'o-alice', sid: 'sid-1' });
  const other = (await signer.sign({ openid: 'o-alice', sid: 'sid-2' })).token;
  await store.put(sessionRecordKey('sid-1'), JSON.stringify({ session_key: 'a2V5', openid: 'o-alice' }), SESSION.ttl);

  const first = verifier.identify(bearer(token));
  assert.equal(first.kind, 'pending', 'not verified before: the signature check is still to pay');
  assert.ok(first.kind === 'pending');
  assert.deepEqual(await first.check(), { kind: 'verified', openid: 'o-alice' });
  const again = verifier.identify(bearer(token));
  assert.equal(again.kind, 'checking', 'verified before: only the revocation get is left');
  const gets = store.gets;
  assert.ok(again.kind === 'checking');
  assert.deepEqual(await again.check(), { kind: 'verified', openid: 'o-alice' });
  assert.equal(store.gets, gets + 1);

  const session = await verifier.session(bearer(token));
  assert.equal(session?.sid, 'sid-1');
  await revocation.logout(session!);
  assert.equal(await store.get(sessionRecordKey('sid-1')), undefined, 'the session_key is deleted');
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'refused', reason: 'session_revoked' });
  assert.deepEqual(await verifier.verify(bearer(other)), { kind: 'verified', openid: 'o-alice' }, "the user's other session lives on");
});

test('scope user: one logout ends every token of the openid signed until then', async () => {
  const { signer, revocation, verifier, advance } = await setup('user');
  const phone = (await signer.sign({ openid: 'o-erin', sid: 'sid-p' })).token;
  const laptop = (await signer.sign({ openid: 'o-erin', sid: 'sid-l' })).token;
  const frank = (await signer.sign({ openid: 'o-frank', sid: 'sid-f' })).token;
  advance(500);
  await revocation.logout((await verifier.session(bearer(phone)))!);
  for (const t of [phone, laptop]) assert.deepEqual(await verifier.verify(bearer(t)), { kind: 'refused', reason: 'session_revoked' });
  assert.deepEqual(await verifier.verify(bearer(frank)), { kind: 'verified', openid: 'o-frank' });
  // Signed in the same second as the logout (after it): refused too, as documented.
  assert.deepEqual(await verifier.verify(bearer((await signer.sign({ openid: 'o-erin', sid: 'sid-same' })).token)), { kind: 'refused', reason: 'session_revoked' });
  advance(1000);
  assert.deepEqual(await verifier.verify(bearer((await signer.sign({ openid: 'o-erin', sid: 'sid-new' })).token)), { kind: 'verified', openid: 'o-erin' });
});

test("the backend's own tokens are never looked up; no token costs no get", async () => {
  const { store, verifier } = await setup('session');
  const iat = Math.floor(Date.parse('2026-12-01T10:00:00Z') / 1000);
  const backend = await new SignJWT({ openid: 'o-legacy' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setIssuedAt(iat)
    .setExpirationTime(iat + 3600)
    .sign(new TextEncoder().encode(BACKEND_SECRET));
  const outcome = await verifier.verify(bearer(backend));
  assert.deepEqual(outcome, { kind: 'verified', openid: 'o-legacy' });
  assert.deepEqual(verifier.identify(bearer(backend)), { kind: 'verified', openid: 'o-legacy' }, 'settled at once, no get');
  assert.equal(await verifier.session(bearer(backend)), undefined);
  assert.deepEqual(verifier.identify({}), { kind: 'none' });
  assert.equal(store.gets, 0);
});

test('while the store cannot answer, a session token is refused with store_unavailable, never let through', async () => {
  const { store, signer, verifier } = await setup('session');
  const { token } = await signer.sign({ openid: 'o-alice', sid: 'sid-1' });
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'verified', openid: 'o-alice' });
  store.down = true;
  await assert.rejects(verifier.verify(bearer(token)), (err: unknown) => err instanceof StoreUnavailableError && err.reason === 'store_unavailable');
});
