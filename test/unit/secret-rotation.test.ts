// Rotating secrets without losing what was signed or encrypted with the old value: the versions a
// reload derives, the previous value in each guard (message-push Token and EncodingAESKey, the
// APIv3 key, the session signing key) inside its window and not after it, the count of each use,
// and a ${file:...} that cannot be read keeping the value read before. Pushes are produced with
// @wecom/crypto, an implementation independent of the gateway's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decrypt as wecomDecrypt, encrypt as wecomEncrypt, getSignature } from '@wecom/crypto';
import { compileWechatCallback } from '../../gateway/guards/wechat-callback.js';
import { compileWechatPayNotify } from '../../gateway/guards/wechatpay-notify.js';
import type { CallbackOutcome, CallbackRequest } from '../../gateway/guards/callback-types.js';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import { IdentityError } from '../../gateway/identity/identity-error.js';
import { compileIdentity } from '../../gateway/identity/verify.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { rotate, type RotationClock, type SecretVersions } from '../../gateway/rotation/versions.js';
import { changedSecrets, secretsInForce } from '../../gateway/rotation/in-force.js';
import { interpolate } from '../../gateway/policy/interpolate.js';
import { parsePolicyText } from '../../gateway/policy/load.js';
import { PolicyError } from '../../gateway/types/policy.js';
import { Reporter } from '../../gateway/policy/report.js';
import { readYaml } from '../../gateway/policy/yaml-source.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';
import type { FileReference, IdentityConfig, PolicyConfig, WechatConfig } from '../../gateway/types/policy.js';
import { encryptPayResource, payNotification, payNotificationBody, randomEncodingAesKey } from '../helpers/wechat-callback.js';
import { generateKeyPairSync } from 'node:crypto';

const pos = { file: 'test.yaml', line: 1, col: 1, path: 'routes[0]' };
const T = 1_800_000_000; // seconds: the callbacks' own clock, fixed
const HOUR = 3_600_000;
const APPID = 'wx1234567890abcdef';

/** A rotation clock the test moves, counting uses of previous values by key. */
function testClock(at: number): RotationClock & { at: number; uses: Map<string, number> } {
  const c = {
    at,
    uses: new Map<string, number>(),
    now: () => c.at,
    usedPrevious: (key: string) => void c.uses.set(key, (c.uses.get(key) ?? 0) + 1),
  };
  return c;
}

function refused(outcome: CallbackOutcome, reason: string): void {
  assert.equal(outcome.kind, 'refuse', JSON.stringify(outcome));
  if (outcome.kind === 'refuse') assert.equal(outcome.reason, reason, outcome.detail);
}

/** Decryption with a wrong key fails on padding, or rarely on the appid after a lucky padding. */
function undecryptable(outcome: CallbackOutcome): void {
  assert.equal(outcome.kind, 'refuse', JSON.stringify(outcome));
  if (outcome.kind === 'refuse') assert.ok(['decrypt_failed', 'appid_mismatch'].includes(outcome.reason), outcome.reason);
}

function forwarded(outcome: CallbackOutcome): Extract<CallbackOutcome, { kind: 'forward' }> {
  assert.equal(outcome.kind, 'forward', JSON.stringify(outcome));
  return outcome as Extract<CallbackOutcome, { kind: 'forward' }>;
}

let nonces = 0;
/** A safe-mode push made with @wecom/crypto, the way WeChat would with these values. */
function wecomPush(token: string, aesKey: string, message: string): CallbackRequest {
  const timestamp = String(T);
  const nonce = String(100_000 + ++nonces);
  const encrypt = wecomEncrypt(aesKey, message, APPID);
  const body = `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  return {
    method: 'POST',
    query: new URLSearchParams({ timestamp, nonce, encrypt_type: 'aes', msg_signature: getSignature(token, timestamp, nonce, encrypt), signature: wechatSignature([token, timestamp, nonce]) }),
    headers: { 'content-type': 'text/xml' },
    body: Buffer.from(body, 'utf8'),
  };
}

/** URL verification: signed with the Token alone. */
function plain(token: string): CallbackRequest {
  const timestamp = String(T);
  const nonce = String(100_000 + ++nonces);
  return {
    method: 'GET',
    query: new URLSearchParams({ timestamp, nonce, echostr: '4375120948345356249', signature: wechatSignature([token, timestamp, nonce]) }),
    headers: {},
    body: Buffer.alloc(0),
  };
}

function answered(outcome: CallbackOutcome): void {
  assert.equal(outcome.kind, 'answer', JSON.stringify(outcome));
}

// --- the versions a reload derives ----------------------------------------------------------

test('rotate: an unchanged value keeps its versions, a changed one keeps the old as previous for the window', () => {
  const start = rotate('wechat.token', undefined, 'old', HOUR, 0);
  assert.deepEqual(start, { key: 'wechat.token', current: 'old', previous: undefined });
  assert.equal(rotate('wechat.token', start, 'old', HOUR, 10), start);
  const changed = rotate('wechat.token', start, 'new', HOUR, 1000);
  assert.deepEqual(changed, { key: 'wechat.token', current: 'new', previous: { value: 'old', until: 1000 + HOUR } });
  // A reload of the same value inside the window does not restart it.
  assert.equal(rotate('wechat.token', changed, 'new', HOUR, 2000), changed);
  // Once the window is over, a reload drops the previous value.
  assert.deepEqual(rotate('wechat.token', changed, 'new', HOUR, 1000 + HOUR), { key: 'wechat.token', current: 'new', previous: undefined });
  // A second change inside the window: only the value in force just before stays previous.
  assert.deepEqual(rotate('wechat.token', changed, 'newer', HOUR, 5000), { key: 'wechat.token', current: 'newer', previous: { value: 'new', until: 5000 + HOUR } });
  // No window, no previous (the AppSecret).
  assert.equal(rotate('wechat.app_secret', start, 'new', 0, 1000).previous, undefined);
});

test('secretsInForce: each secret gets its own window, the AppSecret none; changedSecrets names keys, not values', () => {
  const policy = (token: string, appSecret: string, key: string): PolicyConfig =>
    ({
      wechat: { appid: APPID, app_secret: appSecret, token, encoding_aes_key: 'k'.repeat(43), rotation_window: HOUR },
      wechatpay: { apiv3_key: 'p'.repeat(32), keys: [], rotation_window: 24 * HOUR },
      identity: { session: { signing_key: key, ttl: 2 * HOUR, issuer: 'wxgw' } },
    }) as unknown as PolicyConfig;
  const first = secretsInForce(policy('t1', 's1', 'k1'.repeat(16)), undefined, 0);
  assert.deepEqual([...first.keys()].sort(), ['identity.session.signing_key', 'wechat.app_secret', 'wechat.encoding_aes_key', 'wechat.token', 'wechatpay.apiv3_key']);
  const next = secretsInForce(policy('t2', 's2', 'k2'.repeat(16)), first, 1000);
  assert.deepEqual(next.get('wechat.token')!.previous, { value: 't1', until: 1000 + HOUR });
  assert.deepEqual(next.get('identity.session.signing_key')!.previous, { value: 'k1'.repeat(16), until: 1000 + 2 * HOUR });
  assert.equal(next.get('wechat.app_secret')!.previous, undefined);
  assert.deepEqual(next.get('wechatpay.apiv3_key'), first.get('wechatpay.apiv3_key'));
  const changes = changedSecrets(first, next);
  assert.deepEqual(changes.map((c) => c.key).sort(), ['identity.session.signing_key', 'wechat.app_secret', 'wechat.token']);
  assert.doesNotMatch(JSON.stringify(changes), /t1|t2|s1|s2|k1|k2/);
});

// --- message push: Token and EncodingAESKey ---------------------------------------------------

function callbackGuard(token: SecretVersions, aes: SecretVersions, clock: RotationClock) {
  const wechat: WechatConfig = { appid: APPID, token: token.current, encoding_aes_key: aes.current, api_base: new URL('https://api.weixin.qq.com'), api_timeout: 5000, pos };
  const now = () => T * 1000;
  return compileWechatCallback({ decrypt: true, max_skew: 300_000, max_body: 65_536, pos }, wechat, new MemoryStore({ now }), now, { token, encodingAesKey: aes, clock });
}

test('message push: the old Token and EncodingAESKey are accepted inside the window, counted, and refused after it', async () => {
  const [oldToken, newToken] = ['oldToken123', 'newToken456'];
  const [oldKey, newKey] = [randomEncodingAesKey(), randomEncodingAesKey()];
  const clock = testClock(HOUR);
  const token = rotate('wechat.token', rotate('wechat.token', undefined, oldToken, HOUR, 0), newToken, HOUR, HOUR);
  const aes = rotate('wechat.encoding_aes_key', rotate('wechat.encoding_aes_key', undefined, oldKey, HOUR, 0), newKey, HOUR, HOUR);
  const g = callbackGuard(token, aes, clock);

  const message = '<xml><Content><![CDATA[in flight]]></Content></xml>';
  const viaOld = forwarded(await g.check(wecomPush(oldToken, oldKey, message)));
  assert.equal(viaOld.body.toString(), message);
  assert.deepEqual(Object.fromEntries(clock.uses), { 'wechat.token': 1, 'wechat.encoding_aes_key': 1 });
  // The reply goes back sealed with the key WeChat used for the push, readable with it.
  const sealed = viaOld.sealReply!({ contentType: 'text/xml', body: Buffer.from('<xml><Content>ok</Content></xml>') });
  const encrypt = /<Encrypt><!\[CDATA\[([^\]]+)\]\]><\/Encrypt>/.exec(sealed.body.toString())![1]!;
  assert.equal(wecomDecrypt(oldKey, encrypt).message, '<xml><Content>ok</Content></xml>');
  const [, sig] = /<MsgSignature><!\[CDATA\[([^\]]+)\]\]>/.exec(sealed.body.toString()) ?? [];
  const [, ts] = /<TimeStamp>(\d+)<\/TimeStamp>/.exec(sealed.body.toString()) ?? [];
  const [, nonce] = /<Nonce><!\[CDATA\[([^\]]+)\]\]>/.exec(sealed.body.toString()) ?? [];
  assert.equal(sig, getSignature(oldToken, ts!, nonce!, encrypt));

  // The new values work and count nothing; the reply to them is sealed with the new key.
  const viaNew = forwarded(await g.check(wecomPush(newToken, newKey, message)));
  const sealedNew = viaNew.sealReply!({ contentType: 'text/xml', body: Buffer.from('<xml>r</xml>') });
  assert.equal(wecomDecrypt(newKey, /<Encrypt><!\[CDATA\[([^\]]+)\]\]>/.exec(sealedNew.body.toString())![1]!).message, '<xml>r</xml>');
  answered(await g.check(plain(oldToken)));
  assert.equal(clock.uses.get('wechat.token'), 2);

  // Past the window the very same guard refuses the old values.
  clock.at = 2 * HOUR;
  refused(await g.check(wecomPush(oldToken, oldKey, message)), 'signature_invalid');
  refused(await g.check(plain(oldToken)), 'signature_invalid');
  // The new Token with the old key: the signature verifies, the key no longer does.
  undecryptable(await g.check(wecomPush(newToken, oldKey, message)));
  forwarded(await g.check(wecomPush(newToken, newKey, message)));
  assert.equal(clock.uses.get('wechat.token'), 2);
});

test('message push: a value that never was in force is refused inside the window too', async () => {
  const clock = testClock(0);
  const token = rotate('wechat.token', rotate('wechat.token', undefined, 'oldToken', HOUR, 0), 'newToken', HOUR, 0);
  const key = randomEncodingAesKey();
  const g = callbackGuard(token, rotate('wechat.encoding_aes_key', undefined, key, HOUR, 0), clock);
  refused(await g.check(plain('otherToken')), 'signature_invalid');
  undecryptable(await g.check(wecomPush('newToken', randomEncodingAesKey(), '<xml/>')));
  assert.equal(clock.uses.size, 0);
});

test('message push: a previous value the policy declares is accepted until its time, beside one a reload replaced', async () => {
  const clock = testClock(0);
  const key = randomEncodingAesKey();
  const [declaredToken, replacedToken, currentToken] = ['declaredToken1', 'replacedToken2', 'currentToken3'];
  const policy = (token: string) =>
    ({ wechat: { appid: APPID, token, encoding_aes_key: key, rotation_window: HOUR, previous: { token: declaredToken, until: 3 * HOUR } } }) as unknown as PolicyConfig;
  // Started with the declared previous value (as after a restart), then a reload changes the Token.
  const first = secretsInForce(policy(replacedToken), undefined, 0);
  assert.deepEqual(first.get('wechat.token')!.declared, { value: declaredToken, until: 3 * HOUR });
  const next = secretsInForce(policy(currentToken), first, 0);
  const g = callbackGuard(next.get('wechat.token')!, next.get('wechat.encoding_aes_key')!, clock);
  for (const token of [currentToken, replacedToken, declaredToken]) forwarded(await g.check(wecomPush(token, key, '<xml/>')));
  assert.equal(clock.uses.get('wechat.token'), 2);
  clock.at = HOUR; // the reload's window is over, the declared one is not
  refused(await g.check(wecomPush(replacedToken, key, '<xml/>')), 'signature_invalid');
  forwarded(await g.check(wecomPush(declaredToken, key, '<xml/>')));
  clock.at = 3 * HOUR;
  refused(await g.check(wecomPush(declaredToken, key, '<xml/>')), 'signature_invalid');
  forwarded(await g.check(wecomPush(currentToken, key, '<xml/>')));
  // Removing `previous` from the policy ends it at the next reload, whatever its time said.
  const removed = secretsInForce({ wechat: { appid: APPID, token: currentToken, encoding_aes_key: key, rotation_window: HOUR } } as unknown as PolicyConfig, next, HOUR);
  assert.equal(removed.get('wechat.token')!.declared, undefined);
});

test('wxgw validate: a previous value whose time has passed is a warning, one of the wrong form an error, a literal one a warning', async () => {
  const policy = (previous: string) => `version: 1
server:
  https: off
  http: { listen: "127.0.0.1:8080" }
  trusted_proxies: [10.0.0.0/8]
wechat:
  appid: ${APPID}
  token: \${WX_TOKEN}
  previous: ${previous}
upstreams:
  app: { url: "http://127.0.0.1:3000" }
routes:
  - { name: all, match: { path_prefix: / }, upstream: app, allow: any }
`;
  const env = { WX_TOKEN: 'currentToken3', WX_TOKEN_OLD: 'previousToken2' };
  const passed = await parsePolicyText(policy('{ token: "${WX_TOKEN_OLD}", until: 2020-01-01T00:00:00Z }'), 'gateway.yaml', { env });
  assert.deepEqual(
    passed.warnings.map((w) => `${w.path}: ${w.message}`),
    ['wechat.previous.until: 2020-01-01T00:00:00Z has passed: the previous values are no longer accepted; remove `previous` (and the secrets it reads)'],
  );
  assert.equal(passed.config.wechat!.previous!.until, Date.UTC(2020, 0, 1));
  const future = await parsePolicyText(policy('{ token: "${WX_TOKEN_OLD}", until: 2099-01-01T08:00:00+08:00 }'), 'gateway.yaml', { env });
  assert.deepEqual(future.warnings, []);
  assert.deepEqual(future.config.wechat!.previous, { token: 'previousToken2', until: Date.UTC(2099, 0, 1) });

  const literal = await parsePolicyText(policy('{ token: previousToken2, until: 2099-01-01T00:00:00Z }'), 'gateway.yaml', { env });
  assert.deepEqual(literal.warnings.map((w) => w.path), ['wechat.previous.token']);
  await assert.rejects(parsePolicyText(policy('{ token: "no-dashes-allowed", until: 2099-01-01T00:00:00Z }'), 'gateway.yaml', { env }), (err: unknown) => {
    assert.ok(err instanceof PolicyError);
    assert.deepEqual(err.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.path}: ${d.message}`), ['wechat.previous.token: is not a message-push Token: WeChat accepts 3 to 32 letters and digits']);
    assert.ok(!err.message.includes('no-dashes-allowed'));
    return true;
  });
  await assert.rejects(parsePolicyText(policy('{ token: "${WX_TOKEN_OLD}", until: 2026-13-01T00:00:00Z }'), 'gateway.yaml', { env }), /wechat\.previous\.until/);
  await assert.rejects(parsePolicyText(policy('{ token: "${WX_TOKEN_OLD}", until: next week }'), 'gateway.yaml', { env }), /wechat\.previous\.until/);
});

// --- WeChat Pay: the APIv3 key --------------------------------------------------------------

test('Pay notification: the old APIv3 key decrypts inside its window, counted, and not after it', async () => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const serial = 'PUB_KEY_ID_0114232134912410000000000000000000';
  const [oldKey, newKey] = ['o'.repeat(16) + 'O'.repeat(16), 'n'.repeat(16) + 'N'.repeat(16)];
  const clock = testClock(0);
  const versions = rotate('wechatpay.apiv3_key', rotate('wechatpay.apiv3_key', undefined, oldKey, 24 * HOUR, 0), newKey, 24 * HOUR, 0);
  const now = () => T * 1000;
  const g = compileWechatPayNotify(
    { decrypt: true, max_skew: 300_000, max_body: 65_536, pos },
    { apiv3_key: newKey, keys: [{ serial, public_key_pem: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(), file: '/k.pem' }], pos },
    new MemoryStore({ now }),
    now,
    { apiv3Key: versions, clock },
  );
  const notify = (key: string) => payNotification(keys.privateKey, serial, payNotificationBody(encryptPayResource(key, '{"out_trade_no":"1217752501201407033233368018"}')), { timestamp: T });
  assert.equal(forwarded(await g.check(notify(oldKey))).body.toString(), '{"out_trade_no":"1217752501201407033233368018"}');
  forwarded(await g.check(notify(newKey)));
  assert.deepEqual(Object.fromEntries(clock.uses), { 'wechatpay.apiv3_key': 1 });
  refused(await g.check(notify('x'.repeat(32))), 'decrypt_failed');
  clock.at = 24 * HOUR;
  refused(await g.check(notify(oldKey)), 'decrypt_failed');
  forwarded(await g.check(notify(newKey)));
  assert.equal(clock.uses.get('wechatpay.apiv3_key'), 1);
});

// --- session tokens -------------------------------------------------------------------------

test('session tokens: after a key change new tokens use the new key, old ones verify until they expire', async () => {
  const ttl = 2 * HOUR;
  const session = (signing_key: string) => ({ signing_key, ttl, issuer: 'wxgw' });
  const [oldKey, newKey] = ['old-session-signing-key-0123456789abcdef', 'new-session-signing-key-0123456789abcdef'];
  const clock = testClock(0);
  const before = await SessionSigner.create(session(oldKey), { now: clock.now });
  const live = (await before.sign({ openid: 'o-live', sid: 's1' })).token;

  clock.at = HOUR; // the key changes an hour into the old token's life
  const versions = rotate('identity.session.signing_key', rotate('identity.session.signing_key', undefined, oldKey, ttl, 0), newKey, ttl, clock.at);
  const after = await SessionSigner.create(session(newKey), { now: clock.now, versions, clock });
  // Believed no longer than the old key's window, one ttl from the change; `iat` (seconds) is when it was signed.
  assert.deepEqual(await after.verify(live), { openid: 'o-live', sid: 's1', iat: 0, notAfter: 3 * HOUR });
  assert.equal(clock.uses.get('identity.session.signing_key'), 1);
  const fresh = (await after.sign({ openid: 'o-new', sid: 's2' })).token;
  // Signed with the new key: a signer that only has the old one refuses it.
  await assert.rejects(before.verify(fresh), (err: unknown) => err instanceof IdentityError && err.reason === 'token_invalid');
  assert.deepEqual(await after.verify(fresh), { openid: 'o-new', sid: 's2', iat: HOUR / 1000 });

  // The old token expires at 2h, on its own exp, while the window (until 3h) still runs.
  clock.at = 2 * HOUR;
  await assert.rejects(after.verify(live), (err: unknown) => err instanceof IdentityError && err.reason === 'token_expired');
  // A token forged with a key that never was in force stays invalid inside the window.
  const stranger = await SessionSigner.create(session('a-key-that-was-never-in-force-0123456789'), { now: clock.now });
  await assert.rejects(after.verify((await stranger.sign({ openid: 'o-x', sid: 's3' })).token), (err: unknown) => err instanceof IdentityError && err.reason === 'token_invalid');
  assert.equal(clock.uses.get('identity.session.signing_key'), 1);
});

test('session tokens: past the window the previous key verifies nothing, whatever the token says', async () => {
  const [oldKey, newKey] = ['old-session-signing-key-0123456789abcdef', 'new-session-signing-key-0123456789abcdef'];
  const clock = testClock(0);
  // A long-lived token (ttl 10h) against a window of 1h: the window, not exp, ends it.
  const before = await SessionSigner.create({ signing_key: oldKey, ttl: 10 * HOUR, issuer: 'wxgw' }, { now: clock.now });
  const live = (await before.sign({ openid: 'o', sid: 's' })).token;
  const versions = rotate('identity.session.signing_key', rotate('identity.session.signing_key', undefined, oldKey, HOUR, 0), newKey, HOUR, 0);
  const after = await SessionSigner.create({ signing_key: newKey, ttl: HOUR, issuer: 'wxgw' }, { now: clock.now, versions, clock });
  await after.verify(live);
  clock.at = HOUR;
  await assert.rejects(after.verify(live), (err: unknown) => err instanceof IdentityError && err.reason === 'token_invalid');
});

test('identity: a token the previous key verified is not believed past that key\'s window, from the cache either', async () => {
  const [oldKey, newKey] = ['old-session-signing-key-0123456789abcdef', 'new-session-signing-key-0123456789abcdef'];
  const clock = testClock(0);
  // The ttl was cut from 10h to 1h with the key change: old tokens' exp lies past the window.
  const before = await SessionSigner.create({ signing_key: oldKey, ttl: 10 * HOUR, issuer: 'wxgw' }, { now: clock.now });
  const live = (await before.sign({ openid: 'o-live', sid: 's' })).token;
  const session = { signing_key: newKey, ttl: HOUR, issuer: 'wxgw' };
  const versions = rotate('identity.session.signing_key', rotate('identity.session.signing_key', undefined, oldKey, HOUR, 0), newKey, HOUR, 0);
  const signer = await SessionSigner.create(session, { now: clock.now, versions, clock });
  const cfg = { session, token: { header: 'authorization' }, upstream_header: 'x-wx-openid', unionid_header: 'x-wx-unionid' } as unknown as IdentityConfig;
  const identity = await compileIdentity(cfg, { signer, now: clock.now });
  const headers = { authorization: `Bearer ${live}` };
  assert.deepEqual(await identity.verify(headers), { kind: 'verified', openid: 'o-live' });
  assert.deepEqual(await identity.verify(headers), { kind: 'verified', openid: 'o-live' });
  clock.at = HOUR;
  assert.deepEqual(await identity.verify(headers), { kind: 'refused', reason: 'token_invalid' });
});

// --- ${file:...} that cannot be read ----------------------------------------------------------

async function resolve(yaml: string, dir: string, previous?: ReadonlyMap<string, FileReference>) {
  const source = readYaml(yaml, join(dir, 'p.yaml'));
  const report = new Reporter('p.yaml', source.locator);
  const result = await interpolate(source.data, { env: {}, baseDir: dir, ...(previous && { previous }) }, report);
  return { data: source.data as { wechat: { token: string } }, result, findings: report.findings.map((f) => `${f.diagnostic.severity}: ${f.diagnostic.path}: ${f.diagnostic.message}`) };
}

test('${file:} on reload: an unreadable or empty file keeps the value read before, with a warning that never holds it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-rot-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  writeFileSync(file, 'Sup3rSecretToken\n');
  const yaml = `wechat:\n  token: \${file:${file}}\n`;
  const first = await resolve(yaml, dir);
  assert.deepEqual(first.findings, []);
  assert.deepEqual(first.result.files.get('wechat.token'), { files: [file], value: 'Sup3rSecretToken' });

  rmSync(file);
  const kept = await resolve(yaml, dir, first.result.files);
  assert.equal(kept.data.wechat.token, 'Sup3rSecretToken');
  assert.deepEqual(kept.result.failed, []);
  assert.equal(kept.findings.length, 1);
  assert.match(kept.findings[0]!, /^warning: wechat\.token: .*cannot read .*token: no such file or directory \(ENOENT\); the value read before stays in force/);
  assert.doesNotMatch(kept.findings[0]!, /Sup3rSecretToken/);
  assert.match(kept.result.files.get('wechat.token')!.unreadable!, /ENOENT/);

  writeFileSync(file, '');
  const empty = await resolve(yaml, dir, kept.result.files);
  assert.equal(empty.data.wechat.token, 'Sup3rSecretToken');
  assert.match(empty.findings[0]!, /^warning: .* is empty; the value read before stays in force/);

  // Readable again: the new value, nothing kept.
  writeFileSync(file, 'N3wToken\n');
  const back = await resolve(yaml, dir, empty.result.files);
  assert.deepEqual(back.result.files.get('wechat.token'), { files: [file], value: 'N3wToken' });
  assert.deepEqual(back.findings, []);
});

test('${file:} on reload: nothing stands in for a file never read under that key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-rot-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  writeFileSync(file, 'Sup3rSecretToken');
  const first = await resolve(`wechat:\n  token: \${file:${file}}\n`, dir);
  // The policy now names another file, which is missing: an error, the old value is not used.
  const moved = await resolve(`wechat:\n  token: \${file:${join(dir, 'other')}}\n`, dir, first.result.files);
  assert.equal(moved.findings.length, 1);
  assert.match(moved.findings[0]!, /^error: wechat\.token: .*cannot read/);
  assert.equal(moved.result.failed.length, 1);
  // At a start (no previous values) a missing file is an error as always.
  rmSync(file);
  const start = await resolve(`wechat:\n  token: \${file:${file}}\n`, dir);
  assert.match(start.findings[0]!, /^error: /);
  // A string whose other reference is wrong keeps nothing either.
  const broken = await resolve(`wechat:\n  token: "\${file:${file}}\${NOT_SET}"\n`, dir, first.result.files);
  assert.ok(broken.findings.some((f) => f.startsWith('error: ')), broken.findings.join('\n'));
});
