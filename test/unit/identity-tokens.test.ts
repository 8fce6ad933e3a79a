import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignJWT, exportJWK, type JWTPayload } from 'jose';
import { JwtVerifier } from '../../gateway/identity/jwt-verifier.js';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import { IdentityError } from '../../gateway/identity/identity-error.js';
import { compileIdentity } from '../../gateway/identity/verify.js';
import type { IdentityConfig } from '../../gateway/types/policy.js';
import { issueLeaf } from '../../gateway/tls/generate.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'identity' };
const SESSION = { signing_key: 'session-signing-key-that-is-long-enough-0123', ttl: 3_600_000, issuer: 'wxgw' };
const BACKEND_SECRET = 'legacy-backend-hs-secret-0123456789abcdef';
const NOW = () => Math.floor(Date.now() / 1000);

type JwtConfig = NonNullable<IdentityConfig['jwt']>;

function identity(over: Partial<IdentityConfig> = {}): IdentityConfig {
  return { token: { header: 'authorization' }, upstream_header: 'x-wx-openid', unionid_header: 'x-wx-unionid', pos, ...over };
}

function jwtCfg(key: JwtConfig['key'], over: Partial<JwtConfig> = {}): JwtConfig {
  return { key, openid_claim: 'openid', clock_tolerance: 30_000, ...over };
}

const secretKey = { kind: 'secret', secret: BACKEND_SECRET } as const;

async function backendToken(
  claims: JWTPayload,
  key: Parameters<SignJWT['sign']>[0] = new TextEncoder().encode(BACKEND_SECRET),
  header: { alg: string; kid?: string } = { alg: 'HS256' },
): Promise<string> {
  return new SignJWT({ exp: NOW() + 600, ...claims }).setProtectedHeader(header).sign(key);
}

const bearer = (token: string): IncomingHttpHeaders => ({ authorization: `Bearer ${token}` });

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function rejectsWith(p: Promise<unknown>, reason: string) {
  await assert.rejects(p, (err: unknown) => err instanceof IdentityError && err.reason === reason);
}

test('a session token round-trips: wxgw signs it at login and accepts it on later requests', async () => {
  const signer = await SessionSigner.create(SESSION);
  const { token, expiresIn } = await signer.sign({ openid: 'o-user-1', sid: 'sid-1' });
  assert.equal(expiresIn, 3600);
  const { iat, ...claims } = await signer.verify(token);
  assert.deepEqual(claims, { openid: 'o-user-1', sid: 'sid-1' });
  assert.equal(typeof iat, 'number');
  const verifier = await compileIdentity(identity({ session: SESSION }), { signer });
  assert.equal(verifier.upstreamHeader, 'x-wx-openid');
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'verified', openid: 'o-user-1' });
  // compileIdentity builds its own signer from the same config when none is handed in.
  const own = await compileIdentity(identity({ session: SESSION }), {});
  assert.deepEqual(await own.verify(bearer(token)), { kind: 'verified', openid: 'o-user-1' });
});

test('an expired session token is token_expired; a tampered or foreign one is token_invalid', async () => {
  const signer = await SessionSigner.create(SESSION);
  const verifier = await compileIdentity(identity({ session: SESSION }), { signer });
  const past = await SessionSigner.create(SESSION, { now: () => Date.now() - 2 * SESSION.ttl });
  const expired = (await past.sign({ openid: 'o-1', sid: 's' })).token;
  await rejectsWith(signer.verify(expired), 'token_expired');
  assert.deepEqual(await verifier.verify(bearer(expired)), { kind: 'refused', reason: 'token_expired' });

  const { token } = await signer.sign({ openid: 'o-victim', sid: 's' });
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  const tampered = `${h}.${b64json({ ...payload, sub: 'o-attacker' })}.${s}`;
  assert.deepEqual(await verifier.verify(bearer(tampered)), { kind: 'refused', reason: 'token_invalid' });

  const other = await SessionSigner.create({ ...SESSION, signing_key: 'another-key-of-sufficient-length-0123456789' });
  const foreign = (await other.sign({ openid: 'o-1', sid: 's' })).token;
  assert.deepEqual(await verifier.verify(bearer(foreign)), { kind: 'refused', reason: 'token_invalid' });

  const otherIssuer = await SessionSigner.create({ ...SESSION, issuer: 'someone-else' });
  await rejectsWith(signer.verify((await otherIssuer.sign({ openid: 'o-1', sid: 's' })).token), 'token_invalid');
  // An expired token signed with the wrong key is invalid, never merely expired.
  const pastForeign = await SessionSigner.create({ ...SESSION, signing_key: 'another-key-of-sufficient-length-0123456789' }, { now: () => Date.now() - 2 * SESSION.ttl });
  const expiredForeign = (await pastForeign.sign({ openid: 'o-1', sid: 's' })).token;
  assert.deepEqual(await verifier.verify(bearer(expiredForeign)), { kind: 'refused', reason: 'token_invalid' });
});

test('alg none is refused by both kinds of verifier, with or without a signature part', async () => {
  const signer = await SessionSigner.create(SESSION);
  const verifier = await compileIdentity(identity({ session: SESSION, jwt: jwtCfg(secretKey) }), { signer });
  const body = b64json({ sub: 'o-1', sid: 's', iss: 'wxgw', openid: 'o-1', exp: NOW() + 600 });
  const header = b64json({ alg: 'none', typ: 'JWT' });
  for (const token of [`${header}.${body}.`, `${header}.${body}.c2ln`]) {
    assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'refused', reason: 'token_invalid' }, token);
  }
  const jwt = await JwtVerifier.create(jwtCfg(secretKey));
  await rejectsWith(jwt.verify(`${header}.${body}.c2ln`), 'token_invalid');
  await assert.rejects(JwtVerifier.create(jwtCfg(secretKey, { algorithms: ['none'] })), /never accepted/);
});

test("the backend's HS256 JWTs verify with the shared secret, with iss and aud checked", async () => {
  const cfg = jwtCfg(secretKey, { issuer: 'legacy', audience: 'miniapp' });
  const verifier = await compileIdentity(identity({ jwt: cfg }), {});
  const good = await backendToken({ openid: 'o-legacy', iss: 'legacy', aud: 'miniapp' });
  assert.deepEqual(await verifier.verify(bearer(good)), { kind: 'verified', openid: 'o-legacy' });
  const hs512 = await backendToken({ openid: 'o-legacy', iss: 'legacy', aud: 'miniapp' }, undefined, { alg: 'HS512' });
  assert.deepEqual(await verifier.verify(bearer(hs512)), { kind: 'verified', openid: 'o-legacy' });

  const refused = { kind: 'refused', reason: 'token_invalid' };
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o', iss: 'evil', aud: 'miniapp' }))), refused);
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o', iss: 'legacy', aud: 'other' }))), refused);
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o', iss: 'legacy' }))), refused);
  const wrongSecret = new TextEncoder().encode('not-the-backend-secret-0123456789abcdef');
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o', iss: 'legacy', aud: 'miniapp' }, wrongSecret))), refused);
  // Only the algorithms allowed: HS256 signed token, HS512-only policy.
  const only512 = await compileIdentity(identity({ jwt: { ...cfg, algorithms: ['HS512'] } }), {});
  assert.deepEqual(await only512.verify(bearer(good)), refused);
});

test('the openid claim must be a non-empty string; a token without exp is refused', async () => {
  const verifier = await compileIdentity(identity({ jwt: jwtCfg(secretKey, { openid_claim: 'uid' }) }), {});
  const refused = { kind: 'refused', reason: 'token_invalid' };
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ uid: 'o-9' }))), { kind: 'verified', openid: 'o-9' });
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o-9' }))), refused);
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ uid: '' }))), refused);
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ uid: 42 }))), refused);
  const noExp = await new SignJWT({ uid: 'o-9' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(BACKEND_SECRET));
  assert.deepEqual(await verifier.verify(bearer(noExp)), refused);
  // Expired and without the claim: it would not have been accepted fresh either.
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ exp: NOW() - 3600 }))), refused);
});

test('backend JWT expiry honours clock_tolerance', async () => {
  const verifier = await compileIdentity(identity({ jwt: jwtCfg(secretKey) }), {});
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o', exp: NOW() - 10 }))), { kind: 'verified', openid: 'o' });
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o', exp: NOW() - 120 }))), { kind: 'refused', reason: 'token_expired' });
});

test('RS256 JWTs verify with a PEM public key or a certificate; the key is never used as an HMAC secret', async () => {
  const leaf = issueLeaf(null, { cn: 'legacy-jwt' });
  const privateKey = createPrivateKey(leaf.key);
  const spki = createPublicKey(leaf.key).export({ type: 'spki', format: 'pem' }).toString();
  const token = await backendToken({ openid: 'o-rsa' }, privateKey, { alg: 'RS256' });
  for (const pem of [spki, leaf.cert]) {
    const verifier = await compileIdentity(identity({ jwt: jwtCfg({ kind: 'public_key', pem, file: '/keys/jwt.pem' }) }), {});
    assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'verified', openid: 'o-rsa' });
    const ps = await backendToken({ openid: 'o-rsa' }, privateKey, { alg: 'PS256' });
    assert.deepEqual(await verifier.verify(bearer(ps)), { kind: 'verified', openid: 'o-rsa' });
    // The classic confusion attack: HS256 keyed with the public key's PEM text.
    const confused = await backendToken({ openid: 'o-evil' }, new TextEncoder().encode(pem), { alg: 'HS256' });
    assert.deepEqual(await verifier.verify(bearer(confused)), { kind: 'refused', reason: 'token_invalid' });
  }
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const verifier = await compileIdentity(identity({ jwt: jwtCfg({ kind: 'public_key', pem: spki, file: '/k' }) }), {});
  assert.deepEqual(await verifier.verify(bearer(await backendToken({ openid: 'o' }, otherKey, { alg: 'RS256' }))), { kind: 'refused', reason: 'token_invalid' });

  await assert.rejects(JwtVerifier.create(jwtCfg({ kind: 'public_key', pem: spki, file: '/k' }, { algorithms: ['HS256'] })), /HMAC/);
  await assert.rejects(JwtVerifier.create(jwtCfg(secretKey, { algorithms: ['RS256'] })), /shared secret/);
  await assert.rejects(JwtVerifier.create(jwtCfg({ kind: 'public_key', pem: leaf.key, file: '/k' })), /private key/);
});

test('a local JWKS picks the key by kid', async () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwks = {
    keys: [
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', use: 'sig' },
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' },
    ],
  };
  const verifier = await compileIdentity(identity({ jwt: jwtCfg({ kind: 'jwks', jwks, file: '/keys/jwks.json' }, { issuer: 'legacy' }) }), {});
  const es = await backendToken({ openid: 'o-ec', iss: 'legacy' }, ec.privateKey, { alg: 'ES256', kid: 'ec-1' });
  const rs = await backendToken({ openid: 'o-rsa', iss: 'legacy' }, rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' });
  assert.deepEqual(await verifier.verify(bearer(es)), { kind: 'verified', openid: 'o-ec' });
  assert.deepEqual(await verifier.verify(bearer(rs)), { kind: 'verified', openid: 'o-rsa' });
  const refused = { kind: 'refused', reason: 'token_invalid' };
  const unknownKid = await backendToken({ openid: 'o', iss: 'legacy' }, rsa.privateKey, { alg: 'RS256', kid: 'nope' });
  assert.deepEqual(await verifier.verify(bearer(unknownKid)), refused);
  const wrongKid = await backendToken({ openid: 'o', iss: 'legacy' }, rsa.privateKey, { alg: 'RS256', kid: 'ec-1' });
  assert.deepEqual(await verifier.verify(bearer(wrongKid)), refused);
});

test('with both sources configured each token is checked by its own key, and expiry is reported', async () => {
  const signer = await SessionSigner.create(SESSION);
  const verifier = await compileIdentity(identity({ session: SESSION, jwt: jwtCfg(secretKey, { issuer: 'legacy' }) }), { signer });
  const session = (await signer.sign({ openid: 'o-new', sid: 's' })).token;
  assert.deepEqual(await verifier.verify(bearer(session)), { kind: 'verified', openid: 'o-new' });
  const legacy = await backendToken({ openid: 'o-old', iss: 'legacy' });
  assert.deepEqual(await verifier.verify(bearer(legacy)), { kind: 'verified', openid: 'o-old' });
  const expiredLegacy = await backendToken({ openid: 'o-old', iss: 'legacy', exp: NOW() - 3600 });
  assert.deepEqual(await verifier.verify(bearer(expiredLegacy)), { kind: 'refused', reason: 'token_expired' });
  // Signed with the backend's secret but claiming wxgw as issuer: neither key accepts it.
  const forged = await backendToken({ openid: 'o', sub: 'o', sid: 's', iss: 'wxgw' });
  assert.deepEqual(await verifier.verify(bearer(forged)), { kind: 'refused', reason: 'token_invalid' });
});

test('the token can come from a cookie or a custom header', async () => {
  const signer = await SessionSigner.create(SESSION);
  const { token } = await signer.sign({ openid: 'o-c', sid: 's' });
  const byCookie = await compileIdentity(identity({ session: SESSION, token: { cookie: 'wxgw_session' } }), { signer });
  assert.deepEqual(await byCookie.verify({ cookie: `theme=dark; wxgw_session=${token}; lang=zh` }), { kind: 'verified', openid: 'o-c' });
  assert.deepEqual(await byCookie.verify({ cookie: `wxgw_session="${token}"` }), { kind: 'verified', openid: 'o-c' });
  assert.deepEqual(await byCookie.verify({ cookie: 'theme=dark; xwxgw_session=abc' }), { kind: 'none' });
  assert.deepEqual(await byCookie.verify({ cookie: 'wxgw_session=' }), { kind: 'none' });
  assert.deepEqual(await byCookie.verify({}), { kind: 'none' });
  // The Authorization header is not a source when a cookie is configured.
  assert.deepEqual(await byCookie.verify(bearer(token)), { kind: 'none' });
  assert.deepEqual(await byCookie.verify({ cookie: `wxgw_session=${token}; wxgw_session=other.x.y` }), { kind: 'refused', reason: 'token_invalid' });

  const byHeader = await compileIdentity(identity({ session: SESSION, token: { header: 'x-session-token' } }), { signer });
  assert.deepEqual(await byHeader.verify({ 'x-session-token': token }), { kind: 'verified', openid: 'o-c' });
  assert.deepEqual(await byHeader.verify({ 'x-session-token': `Bearer ${token}` }), { kind: 'refused', reason: 'token_invalid' });
  assert.deepEqual(await byHeader.verify({ 'x-session-token': `${token}, ${token}` }), { kind: 'refused', reason: 'token_invalid' });
  assert.deepEqual(await byHeader.verify(bearer(token)), { kind: 'none' });
});

test('a malformed Authorization header is token_invalid; another scheme or none is anonymous', async () => {
  const signer = await SessionSigner.create(SESSION);
  const { token } = await signer.sign({ openid: 'o-a', sid: 's' });
  const verifier = await compileIdentity(identity({ session: SESSION }), { signer });
  const invalid = { kind: 'refused', reason: 'token_invalid' };
  for (const authorization of ['Bearer', 'Bearer ', `Bearer ${token} ${token}`, `Bearer ${token}, Bearer ${token}`, 'Bearer not-a-jwt', 'Bearer a.b', `Bearer ${'a'.repeat(9000)}.b.c`]) {
    assert.deepEqual(await verifier.verify({ authorization }), invalid, authorization);
  }
  assert.deepEqual(await verifier.verify({ authorization: `bearer   ${token}  ` }), { kind: 'verified', openid: 'o-a' });
  assert.deepEqual(await verifier.verify({ authorization: 'Basic dXNlcjpwYXNz' }), { kind: 'none' });
  assert.deepEqual(await verifier.verify({ authorization: '' }), { kind: 'none' });
  assert.deepEqual(await verifier.verify({}), { kind: 'none' });
});

test('a token verified once is remembered only until its own exp, and never a refused one', async () => {
  let now = Date.now();
  const verifier = await compileIdentity(identity({ jwt: jwtCfg(secretKey, { clock_tolerance: 0 }) }), { now: () => now });
  const exp = Math.floor(now / 1000) + 2;
  const token = await backendToken({ openid: 'o-cached', exp });
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'verified', openid: 'o-cached' });
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'verified', openid: 'o-cached' });
  // A token with one byte of its signature changed is refused every time, however often it comes.
  const forged = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
  for (let i = 0; i < 2; i++) assert.deepEqual(await verifier.verify(bearer(forged)), { kind: 'refused', reason: 'token_invalid' });
  now = exp * 1000 - 1;
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'verified', openid: 'o-cached' }, 'remembered until exp');
  now = exp * 1000;
  assert.deepEqual(await verifier.verify(bearer(token)), { kind: 'refused', reason: 'token_expired' });
});
