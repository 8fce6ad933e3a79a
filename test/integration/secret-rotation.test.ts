// Rotating secrets kept in files by a secret store, through the real gateway and its own file
// watching: a Kubernetes-style `..data` swap of the Token and EncodingAESKey while pushes signed
// with the old values keep arriving, the session signing key with live tokens, the APIv3 key, and
// a secret file that becomes unreadable. Pushes are made with @wecom/crypto, independent of the
// gateway's own code; the rotation windows are measured with a clock the test moves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { encrypt as wecomEncrypt, getSignature } from '@wecom/crypto';
import { startGateway, type GatewayHandle } from '../../gateway/main.js';
import { createLogger } from '../../gateway/observability/logger.js';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startFakeWechat } from '../helpers/fake-wechat.js';
import { repoRoot, startCli } from '../helpers/process.js';
import { eventually, waitUntil } from '../helpers/wait.js';
import { encryptPayResource, payNotification, payNotificationBody, randomEncodingAesKey } from '../helpers/wechat-callback.js';

const APPID = 'wx1234567890abcdef';
const HOUR = 3_600_000;

interface Watched {
  gw: GatewayHandle;
  ctx: PolicyContext;
  ca: Buffer;
  /** The rotation clock, moved by the test. */
  clock: { at: number };
  logText(): string;
  waitForLog(pattern: RegExp, after: number): Promise<void>;
  close(): Promise<void>;
}

/** The real gateway with its file watching, a rotation clock the test moves, and its log captured. */
async function startWatched(policy: (ctx: PolicyContext) => string, env: Record<string, string> = {}): Promise<Watched> {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx));
  const chunks: string[] = [];
  const written = new Set<() => void>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      for (const wake of written) wake();
      done();
    },
  });
  const clock = { at: Date.now() };
  const gw = await startGateway({ config: file, env, logger: createLogger({ level: 'debug', destination: sink }), now: () => clock.at });
  const logText = (): string => chunks.join('');
  return {
    gw,
    ctx,
    ca: readFileSync(ctx.chain.root),
    clock,
    logText,
    waitForLog: async (pattern, after) => {
      await waitUntil(() => (pattern.test(logText().slice(after)) ? true : undefined), `a log line matching ${pattern}`, { wake: written, describe: logText });
    },
    close: () => gw.close(),
  };
}

/**
 * A Kubernetes Secret volume: each file is a symlink into `..data`, itself a symlink to a
 * timestamped directory; an update writes a new directory and renames a new `..data` over the
 * old one, so every file changes at once.
 */
function secretVolume(dir: string, version: string, files: Record<string, string>): void {
  const data = join(dir, `..${version}`);
  mkdirSync(data);
  for (const [name, value] of Object.entries(files)) writeFileSync(join(data, name), `${value}\n`);
  symlinkSync(`..${version}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const name of Object.keys(files)) if (!existsSync(join(dir, name))) symlinkSync(`..data/${name}`, join(dir, name));
}

/** Writes `value` to `file` the way an editor or Vault Agent does: a temporary file renamed over it. */
function replaceSecret(file: string, value: string): void {
  writeFileSync(`${file}.tmp`, `${value}\n`);
  renameSync(`${file}.tmp`, file);
}

let nonces = 0;
/** A safe-mode push as WeChat sends it with this Token and EncodingAESKey. */
function push(t: Watched, token: string, aesKey: string, path = '/wx/safe'): Promise<ClientResponse> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(1_000_000 + ++nonces);
  const encrypt = wecomEncrypt(aesKey, `<xml><Content><![CDATA[push ${nonce}]]></Content></xml>`, APPID);
  const query = new URLSearchParams({ timestamp, nonce, encrypt_type: 'aes', signature: wechatSignature([token, timestamp, nonce]), msg_signature: getSignature(token, timestamp, nonce, encrypt) });
  const body = `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  return httpsRequest(t.gw.https!.port, t.ca, { method: 'POST', path: `${path}?${query}`, headers: { 'content-type': 'text/xml' }, body });
}

function reason(res: ClientResponse): string | undefined {
  try {
    return res.json<{ error?: { reason?: string } }>().error?.reason;
  } catch {
    return undefined;
  }
}

async function admin(t: Watched, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${t.gw.admin!.port}${path}`);
  return { status: res.status, text: await res.text() };
}

/** The value of one sample in the Prometheus text, or undefined when it is absent. */
function sample(metrics: string, name: string): number | undefined {
  const line = metrics.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

function assertNoSecrets(t: Watched, secrets: string[]): void {
  const text = t.logText();
  for (const s of secrets) assert.ok(!text.includes(s), `the log holds a secret value (${s.length} characters)`);
}

function callbackPolicy(secretDir: string, upstream: TestUpstream) {
  return (ctx: PolicyContext): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
wechat:
  appid: ${APPID}
  token: \${file:${secretDir}/token}
  encoding_aes_key: "\${file:${secretDir}/encoding_aes_key}"
  rotation_window: 1h
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: wx-safe
    match: { path: /wx/safe }
    upstream: legacy
    wechat_callback: { decrypt: true }
defaults: { allow: any }
`;
}

test('a Kubernetes Secret update of the Token and EncodingAESKey under load: pushes with the old values are all delivered inside the window and refused after it', async () => {
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('success');
  });
  const secretDir = mkdtempSync(join(tmpdir(), 'wxgw-secret-'));
  const old = { token: 'oldPushToken2026', encoding_aes_key: randomEncodingAesKey() };
  const next = { token: 'newPushToken2026', encoding_aes_key: randomEncodingAesKey() };
  secretVolume(secretDir, '2026_12_01_10_00_00.1', old);
  const t = await startWatched(callbackPolicy(secretDir, upstream));
  try {
    const first = await push(t, old.token, old.encoding_aes_key);
    assert.equal(first.status, 200, first.text);

    // Pushes signed and encrypted with the old values keep coming, three at a time, while the
    // Secret is updated; they stop 30 pushes after the gateway reported the change.
    let changeSeen = false;
    let afterChange = 0;
    const statuses: number[] = [];
    const sender = async (): Promise<void> => {
      while (!changeSeen || afterChange < 30) {
        // Counted only when sent after the change was reported: then the new policy verified it.
        const sentAfter = changeSeen;
        const res = await push(t, old.token, old.encoding_aes_key);
        statuses.push(res.status);
        if (sentAfter) afterChange++;
        if (statuses.length > 2000) throw new Error('the change was never seen');
      }
    };
    const senders = [sender(), sender(), sender()];
    await waitUntil(() => (statuses.length >= 10 ? true : undefined), '10 pushes before the change');
    const mark = t.logText().length;
    secretVolume(secretDir, '2026_12_01_11_00_00.2', next);
    await t.waitForLog(/secret wechat\.token changed; the previous value is still accepted until/, mark);
    await t.waitForLog(/secret wechat\.encoding_aes_key changed/, mark);
    changeSeen = true;
    await Promise.all(senders);

    assert.deepEqual([...new Set(statuses)], [200], 'every push in flight is delivered');
    assert.equal(upstream.received.length, statuses.length + 1);
    const line = t.logText().slice(mark).split('\n').find((l) => l.includes('secret wechat.token changed'))!;
    assert.equal(JSON.parse(line).secret, 'wechat.token');

    // The new values are in force; the old ones were what verified the late pushes.
    assert.equal((await push(t, next.token, next.encoding_aes_key)).status, 200);
    const metrics = (await admin(t, '/metrics')).text;
    assert.ok(sample(metrics, 'wxgw_secret_previous_used_total{secret="wechat.token"}')! >= 30, metrics);
    assert.ok(sample(metrics, 'wxgw_secret_previous_used_total{secret="wechat.encoding_aes_key"}')! >= 30, metrics);

    // Past the window: refused, and counted no more.
    t.clock.at += HOUR + 1000;
    const late = await push(t, old.token, old.encoding_aes_key);
    assert.equal(late.status, 403, late.text);
    assert.equal(reason(late), 'signature_invalid');
    assert.equal((await push(t, next.token, next.encoding_aes_key)).status, 200);
    const after = (await admin(t, '/metrics')).text;
    assert.equal(sample(after, 'wxgw_secret_previous_used_total{secret="wechat.token"}'), sample(metrics, 'wxgw_secret_previous_used_total{secret="wechat.token"}'));
    assertNoSecrets(t, [old.token, next.token, old.encoding_aes_key, next.encoding_aes_key]);
  } finally {
    await t.close();
    await upstream.close();
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test('a secret file that becomes unreadable keeps its value, is reported in log, metric and /readyz, and a rewrite brings the new one', async () => {
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('success');
  });
  const secretDir = mkdtempSync(join(tmpdir(), 'wxgw-secret-'));
  const aes = randomEncodingAesKey();
  const [oldToken, newToken] = ['keptPushToken01', 'rewrittenToken02'];
  writeFileSync(join(secretDir, 'token'), `${oldToken}\n`);
  writeFileSync(join(secretDir, 'encoding_aes_key'), `${aes}\n`);
  const t = await startWatched(callbackPolicy(secretDir, upstream));
  try {
    let mark = t.logText().length;
    rmSync(join(secretDir, 'token'));
    await t.waitForLog(/"msg":"policy reloaded"/, mark);
    const warning = t.logText().slice(mark).split('\n').find((l) => l.includes('the value read before stays in force'));
    assert.ok(warning, t.logText().slice(mark));
    assert.equal(JSON.parse(warning).key, 'wechat.token');
    assert.match(warning, /no such file or directory \(ENOENT\)/);

    // The old Token still verifies: the secret was not emptied.
    assert.equal((await push(t, oldToken, aes)).status, 200);
    const ready = await admin(t, '/readyz');
    assert.equal(ready.status, 200, 'the gateway serves with the value read before, so it stays ready');
    const body = JSON.parse(ready.text) as { warnings?: string[] };
    assert.equal(body.warnings?.length, 1, ready.text);
    assert.match(body.warnings![0]!, /^secret file unreadable: wechat\.token keeps the value read before \(.*ENOENT/);
    assert.equal(sample((await admin(t, '/metrics')).text, 'wxgw_secret_file_unreadable{key="wechat.token"}'), 1);

    // The store writes the new value: it is read, and the kept one becomes the previous one.
    mark = t.logText().length;
    replaceSecret(join(secretDir, 'token'), newToken);
    await t.waitForLog(/secret wechat\.token changed/, mark);
    assert.equal((await push(t, newToken, aes)).status, 200);
    assert.equal((await push(t, oldToken, aes)).status, 200);
    assert.equal(JSON.parse((await admin(t, '/readyz')).text).warnings, undefined);
    const metrics = (await admin(t, '/metrics')).text;
    assert.equal(sample(metrics, 'wxgw_secret_file_unreadable{key="wechat.token"}'), undefined);
    assert.equal(sample(metrics, 'wxgw_secret_previous_used_total{secret="wechat.token"}'), 1);
    assertNoSecrets(t, [oldToken, newToken, aes]);
  } finally {
    await t.close();
    await upstream.close();
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test('the session signing key rotated with live tokens: old tokens keep working, new logins sign with the new key', async () => {
  const upstream = await startUpstream();
  const wechat = await startFakeWechat({ appid: APPID });
  wechat.codes.set('code-before', { openid: 'o-before', session_key: 'wx-session-key-before' });
  wechat.codes.set('code-after', { openid: 'o-after', session_key: 'wx-session-key-after' });
  const secretDir = mkdtempSync(join(tmpdir(), 'wxgw-secret-'));
  const [oldKey, newKey] = ['old-session-signing-key-0123456789abcdef', 'new-session-signing-key-0123456789abcdef'];
  writeFileSync(join(secretDir, 'session_key'), oldKey);
  const t = await startWatched(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
wechat:
  appid: ${APPID}
  app_secret: \${WX_APP_SECRET}
  api_base: "${wechat.url}"
identity:
  login: { path: /wx/login }
  session: { signing_key: "\${file:${secretDir}/session_key}", ttl: 1h }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - { name: private, match: { path_prefix: /private/ }, upstream: legacy, identity_required: true }
defaults: { allow: any }
`,
    { WX_APP_SECRET: wechat.secret },
  );
  const login = async (code: string): Promise<string> => {
    const res = await httpsRequest(t.gw.https!.port, t.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
    assert.equal(res.status, 200, res.text);
    return res.json<{ token: string }>().token;
  };
  const get = (token: string) => httpsRequest(t.gw.https!.port, t.ca, { path: '/private/me', headers: { authorization: `Bearer ${token}` } });
  try {
    const live = await login('code-before');
    assert.equal((await get(live)).status, 200);

    // Half an hour into the live token's hour, the key changes.
    t.clock.at += HOUR / 2;
    const mark = t.logText().length;
    replaceSecret(join(secretDir, 'session_key'), newKey);
    await t.waitForLog(/secret identity\.session\.signing_key changed; the previous value is still accepted until/, mark);

    const liveAfter = await get(live);
    assert.equal(liveAfter.status, 200, liveAfter.text);
    assert.equal(upstream.received.at(-1)!.headers['x-wx-openid'], 'o-before');
    const fresh = await login('code-after');
    assert.equal((await get(fresh)).status, 200);
    // The new token is the new key's: a signer holding only the old key refuses it.
    const oldOnly = await SessionSigner.create({ signing_key: oldKey, ttl: HOUR, issuer: 'wxgw' });
    await assert.rejects(oldOnly.verify(fresh));
    const newOnly = await SessionSigner.create({ signing_key: newKey, ttl: HOUR, issuer: 'wxgw' });
    assert.equal((await newOnly.verify(fresh)).openid, 'o-after');

    // The live token ends at its own expiry, inside the old key's window; the new one lives on.
    t.clock.at += HOUR / 2 + 1000;
    const expired = await get(live);
    assert.equal(expired.status, 401, expired.text);
    assert.equal(reason(expired), 'token_expired');
    assert.equal((await get(fresh)).status, 200);
    assert.equal(sample((await admin(t, '/metrics')).text, 'wxgw_secret_previous_used_total{secret="identity.session.signing_key"}'), 1);
    assertNoSecrets(t, [oldKey, newKey]);
  } finally {
    await t.close();
    await Promise.all([upstream.close(), wechat.close()]);
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test('the APIv3 key rotated: a notification encrypted with the old key decrypts inside the window, not after it', async () => {
  const upstream = await startUpstream();
  const payKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const PUB_KEY_ID = 'PUB_KEY_ID_0114232134912410000000000000000000';
  const secretDir = mkdtempSync(join(tmpdir(), 'wxgw-secret-'));
  const pubFile = join(secretDir, 'wechatpay_pub_key.pem');
  writeFileSync(pubFile, payKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const [oldKey, newKey] = ['oldApiV3Key0123456789abcdefABCDE', 'newApiV3Key0123456789abcdefABCDE'];
  secretVolume(secretDir, 'v1', { apiv3_key: oldKey });
  const t = await startWatched(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
wechatpay:
  apiv3_key: \${file:${secretDir}/apiv3_key}
  public_keys:
    - { id: ${PUB_KEY_ID}, file: ${pubFile} }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - { name: pay, match: { path: /pay/notify }, upstream: legacy, wechatpay_notify: { decrypt: true } }
defaults: { allow: any }
`,
  );
  const notify = (key: string): Promise<ClientResponse> => {
    const req = payNotification(payKeys.privateKey, PUB_KEY_ID, payNotificationBody(encryptPayResource(key, '{"out_trade_no":"1217752501201407033233368018"}')));
    return httpsRequest(t.gw.https!.port, t.ca, { method: 'POST', path: '/pay/notify', headers: req.headers, body: req.body });
  };
  try {
    assert.equal((await notify(oldKey)).status, 200);
    const mark = t.logText().length;
    secretVolume(secretDir, 'v2', { apiv3_key: newKey });
    await t.waitForLog(/secret wechatpay\.apiv3_key changed; the previous value is still accepted until/, mark);
    // The default window for the APIv3 key is a day: WeChat Pay retries that long.
    const retried = await notify(oldKey);
    assert.equal(retried.status, 200, retried.text);
    assert.equal(upstream.received.at(-1)!.body.toString(), '{"out_trade_no":"1217752501201407033233368018"}');
    assert.equal((await notify(newKey)).status, 200);
    t.clock.at += 23 * HOUR;
    assert.equal((await notify(oldKey)).status, 200);
    t.clock.at += HOUR;
    const late = await notify(oldKey);
    assert.equal(reason(late), 'decrypt_failed', late.text);
    assert.equal((await notify(newKey)).status, 200);
    await eventually(async () => (sample((await admin(t, '/metrics')).text, 'wxgw_secret_previous_used_total{secret="wechatpay.apiv3_key"}') === 2 ? true : undefined), 'two uses of the previous APIv3 key counted');
    assertNoSecrets(t, [oldKey, newKey]);
  } finally {
    await t.close();
    await upstream.close();
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test('a previous Token the policy declares is accepted from the start (a restart mid-rotation) until its time', async () => {
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('success');
  });
  const secretDir = mkdtempSync(join(tmpdir(), 'wxgw-secret-'));
  const aes = randomEncodingAesKey();
  const [oldToken, newToken] = ['consoleOldToken1', 'consoleNewToken2'];
  writeFileSync(join(secretDir, 'token'), newToken);
  writeFileSync(join(secretDir, 'token.previous'), oldToken);
  writeFileSync(join(secretDir, 'encoding_aes_key'), aes);
  const until = new Date(Date.now() + 2 * HOUR).toISOString();
  const t = await startWatched((ctx) =>
    callbackPolicy(secretDir, upstream)(ctx).replace('  rotation_window: 1h\n', `  rotation_window: 1h\n  previous: { token: "\${file:${secretDir}/token.previous}", until: ${until} }\n`),
  );
  try {
    assert.equal((await push(t, oldToken, aes)).status, 200);
    assert.equal((await push(t, newToken, aes)).status, 200);
    t.clock.at += 2 * HOUR + 1000;
    assert.equal(reason(await push(t, oldToken, aes)), 'signature_invalid');
    assert.equal((await push(t, newToken, aes)).status, 200);
    assert.equal(sample((await admin(t, '/metrics')).text, 'wxgw_secret_previous_used_total{secret="wechat.token"}'), 1);
    assertNoSecrets(t, [oldToken, newToken, aes]);
  } finally {
    await t.close();
    await upstream.close();
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test('the real CLI: a Secret volume update is logged by key, a file gone dangling keeps its value and shows in /readyz; validate warns of a passed previous', async () => {
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('success');
  });
  const ctx = await policyContext();
  const secretDir = mkdtempSync(join(tmpdir(), 'wxgw-secret-'));
  const old = { token: 'cliOldToken2026', encoding_aes_key: randomEncodingAesKey() };
  const next = { token: 'cliNewToken2026', encoding_aes_key: old.encoding_aes_key };
  secretVolume(secretDir, 'v1', old);
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, callbackPolicy(secretDir, upstream)(ctx));
  const gw = await startCli(file);
  const t = { gw: { https: { port: ctx.httpsPort }, admin: { port: ctx.adminPort } }, ca: readFileSync(ctx.chain.root) } as unknown as Watched;
  try {
    assert.equal((await push(t, old.token, old.encoding_aes_key)).status, 200);
    let mark = gw.output().length;
    secretVolume(secretDir, 'v2', next);
    await gw.waitFor(/secret wechat\.token changed; the previous value is still accepted until/, 15_000, mark);
    assert.doesNotMatch(gw.output().slice(mark), /wechat\.encoding_aes_key changed/, 'an unchanged secret is not reported');
    assert.equal((await push(t, old.token, old.encoding_aes_key)).status, 200);
    assert.equal((await push(t, next.token, next.encoding_aes_key)).status, 200);

    // The next update lacks the token: its symlink dangles. The value read before stays.
    mark = gw.output().length;
    secretVolume(secretDir, 'v3', { encoding_aes_key: next.encoding_aes_key });
    await gw.waitFor(/wechat\.token.*the value read before stays in force/, 15_000, mark);
    await gw.waitFor(/"msg":"policy reloaded"/, 15_000, mark);
    assert.equal((await push(t, next.token, next.encoding_aes_key)).status, 200);
    const ready = await admin(t, '/readyz');
    assert.equal(ready.status, 200);
    assert.match(ready.text, /secret file unreadable: wechat\.token keeps the value read before/);
    assert.equal(sample((await admin(t, '/metrics')).text, 'wxgw_secret_file_unreadable{key="wechat.token"}'), 1);
    for (const value of [old.token, next.token, old.encoding_aes_key]) assert.ok(!gw.output().includes(value), 'the log holds a secret value');
  } finally {
    gw.kill();
    await gw.exited();
    await upstream.close();
  }

  // validate: a declared previous value whose time has passed is a warning (exit 0), never its value.
  writeFileSync(join(secretDir, 'token.previous'), `${old.token}\n`);
  const withPrevious = readFileSync(file, 'utf8').replace('  rotation_window: 1h\n', `  rotation_window: 1h\n  previous: { token: "\${file:${secretDir}/token.previous}", until: 2020-01-01T00:00:00Z }\n`);
  secretVolume(secretDir, 'v4', next);
  writeFileSync(file, withPrevious);
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'validate', '--config', file], { encoding: 'utf8', cwd: repoRoot, timeout: 30_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /wechat\.previous\.until  warning: 2020-01-01T00:00:00Z has passed: the previous values are no longer accepted; remove `previous`/);
  assert.ok(!(r.stdout + r.stderr).includes(old.token));
  rmSync(secretDir, { recursive: true, force: true });
});
