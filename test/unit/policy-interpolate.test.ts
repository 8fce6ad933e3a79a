import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { formatDiagnostic, PolicyError } from '../../gateway/types/policy.js';
import { secretPaths } from '../../gateway/policy/secrets.js';
import { parsePolicyText } from '../../gateway/policy/load.js';
import { ENV, PASSPHRASE, POLICY_FILE, ROOT, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

test('${NAME} takes the value from the environment given in the options', async () => {
  const text = edit({ 6: '  public_host: ${PUBLIC_HOST}' });
  const { config } = await accept(text, { ...ENV, PUBLIC_HOST: 'Gw.Example.com' });
  assert.equal(config.server.public_host, 'gw.example.com');
  assert.equal(config.tls.certificates[0]!.passphrase, PASSPHRASE);
});

test('${file:PATH} reads a file relative to the policy, dropping one trailing newline', async () => {
  const text = edit({ 16: '      passphrase: ${file:../secrets/passphrase}' });
  const { config, warnings } = await accept(text, {});
  assert.equal(config.tls.certificates[0]!.passphrase, PASSPHRASE);
  assert.deepEqual(warnings, []);
  const absolute = edit({ 16: `      passphrase: \${file:${join(ROOT, 'secrets', 'passphrase')}}` });
  assert.equal((await accept(absolute, {})).config.tls.certificates[0]!.passphrase, PASSPHRASE);
});

test('references can sit inside a longer string, and $${ is a literal ${', async () => {
  const text = edit({ 18: '  legacy: { url: "http://${BACKEND}:9000/$${x}", timeout: 10s }' });
  const { config } = await accept(text, { ...ENV, BACKEND: '10.1.2.3' });
  assert.equal(config.upstreams.get('legacy')!.url.href, 'http://10.1.2.3:9000/$%7Bx%7D');
});

test('a missing environment variable names the variable, and the key in the path', async () => {
  expectDiagnostics(await reject(edit({}), {}), [
    {
      line: 16,
      col: 19,
      path: 'tls.certificates[0].passphrase',
      message: ['environment variable TLS_KEY_PASSPHRASE (used as `${TLS_KEY_PASSPHRASE}`) is not set'],
    },
  ]);
  expectDiagnostics(await reject(edit({}), { TLS_KEY_PASSPHRASE: '' }), [
    { line: 16, col: 19, path: 'tls.certificates[0].passphrase', message: ['TLS_KEY_PASSPHRASE', 'is empty'] },
  ]);
});

test('an unreadable ${file:} names the file and the OS error', async () => {
  const text = edit({ 16: '      passphrase: ${file:../secrets/nope}' });
  expectDiagnostics(await reject(text), [
    {
      line: 16,
      col: 19,
      path: 'tls.certificates[0].passphrase',
      message: ['`${file:../secrets/nope}`', `cannot read ${join(ROOT, 'secrets', 'nope')}`, 'ENOENT'],
    },
  ]);
  expectDiagnostics(await reject(edit({ 16: '      passphrase: ${file:../secrets}' })), [
    { line: 16, col: 19, path: 'tls.certificates[0].passphrase', message: ['it is a directory'] },
  ]);
  expectDiagnostics(await reject(edit({ 16: '      passphrase: ${file:../secrets/empty}' })), [
    { line: 16, col: 19, path: 'tls.certificates[0].passphrase', message: ['is empty'] },
  ]);
});

test('malformed references are explained', async () => {
  expectDiagnostics(await reject(edit({ 6: '  public_host: ${PUBLIC_HOST' })), [
    { line: 6, col: 16, path: 'server.public_host', message: ['unterminated `${`', 'write `$${` for a literal `${`'] },
  ]);
  expectDiagnostics(await reject(edit({ 6: '  public_host: ${public host}' })), [
    { line: 6, col: 16, path: 'server.public_host', message: ['`${public host}` is not a reference', '${NAME}', '${file:PATH}'] },
  ]);
});

test('a failed reference is the only thing said about its value', async () => {
  // The raw `${BACKEND_TIMEOUT}` is not a duration either; that would only repeat the problem.
  expectDiagnostics(await reject(edit({ 18: '  legacy: { url: "http://127.0.0.1:9000", timeout: "${BACKEND_TIMEOUT}" }' })), [
    { line: 18, col: 52, path: 'upstreams.legacy.timeout', message: ['BACKEND_TIMEOUT', 'is not set'] },
  ]);
});

test('a reference under an unknown key is not looked up', async () => {
  expectDiagnostics(await reject(edit({ 17: 'stor: { redis_url: "${REDIS_URL}" }\nupstreams:' })), [
    { line: 17, col: 1, path: 'stor', message: ['unknown key `stor`, did you mean `store`?'] },
  ]);
});

test('resolved values are checked like written ones', async () => {
  const text = edit({ 24: '    timeout: ${ROUTE_TIMEOUT}' });
  expectDiagnostics(await reject(text, { ...ENV, ROUTE_TIMEOUT: '90 sec' }), [
    { line: 24, col: 14, path: 'routes[0].timeout', message: ['`90 sec` uses `sec`, which is not a duration unit'] },
  ]);
});

test('secret fields are declared in the schema', () => {
  assert.deepEqual(secretPaths, [
    ['server', 'log', 'openid_hmac_key'],
    ['tls', 'certificates', '*', 'passphrase'],
    ['store', 'cluster', 'password'],
    ['store', 'sentinels', 'password'],
    ['store', 'sentinels', 'sentinel_password'],
    ['wechat', 'app_secret'],
    ['wechat', 'token'],
    ['wechat', 'encoding_aes_key'],
    ['wechat', 'apps', '*', 'app_secret'],
    ['wechat', 'apps', '*', 'token'],
    ['wechat', 'apps', '*', 'encoding_aes_key'],
    ['wechat', 'apps', '*', 'previous', 'token'],
    ['wechat', 'apps', '*', 'previous', 'encoding_aes_key'],
    ['wechat', 'previous', 'token'],
    ['wechat', 'previous', 'encoding_aes_key'],
    ['wechatpay', 'apiv3_key'],
    ['wechatpay', 'previous', 'apiv3_key'],
    ['wechatpay', 'egress', 'private_key'],
    ['identity', 'session', 'signing_key'],
    ['identity', 'session', 'previous', 'signing_key'],
    ['identity', 'jwt', 'secret'],
    ['mask_profiles', '*', 'hash_key'],
    ['alerts', 'channels', '*', 'url'],
    ['alerts', 'channels', '*', 'secret'],
    ['tracing', 'headers', '*'],
  ]);
});

test('a secret written into the policy is a warning that never shows the value', async () => {
  const text = edit({ 16: `      passphrase: ${PASSPHRASE}` });
  const { config, warnings } = await accept(text, {});
  expectDiagnostics(warnings, [
    {
      line: 16,
      col: 19,
      path: 'tls.certificates[0].passphrase',
      severity: 'warning',
      message: ['is a secret written into the policy file', '${ENV_NAME}', '${file:/run/secrets/NAME}'],
    },
  ]);
  assert.equal(config.tls.certificates[0]!.passphrase, PASSPHRASE);
  assert.ok(!warnings.map(formatDiagnostic).join('\n').includes(PASSPHRASE));
});

test('no diagnostic ever holds a secret, written or resolved, even when the policy fails', async () => {
  const literal = edit({ 16: `      passphrase: ${PASSPHRASE}`, 1: 'version: 3' });
  const numeric = edit({ 16: '      passphrase: 4711471147114711' });
  for (const [text, env, secret] of [
    [literal, {}, PASSPHRASE],
    [numeric, {}, '4711471147114711'],
    [edit({ 1: 'version: 3' }), ENV, PASSPHRASE],
  ] as const) {
    const err = await parsePolicyText(text, POLICY_FILE, { env }).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof PolicyError);
    assert.ok(!err.message.includes(secret), err.message);
  }
  expectDiagnostics(await reject(numeric, {}), [
    { line: 16, col: 19, path: 'tls.certificates[0].passphrase', message: [/^expected a string, found a number$/] },
  ]);
});
