// `server.request_id` and `server.log`: the request id header and the openid log key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';
import { userAgent, USER_AGENT_MAX } from '../../gateway/proxy/access-log-fields.js';

// BASE line 8 is `  limits: ...` (server section).
const LIMITS = '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m }';

test('request_id defaults to X-Request-Id from trusted proxies; log has no key', async () => {
  const { config } = await accept(edit({}));
  assert.deepEqual(config.server.request_id, { header: 'x-request-id', trust: true });
  assert.deepEqual(config.server.log, {});
});

test('a renamed request id header is lower-cased; the log key is read from the environment', async () => {
  const { config, warnings } = await accept(
    edit({ 8: `${LIMITS}\n  request_id: { header: X-Trace-ID, trust: false }\n  log: { openid_hmac_key: "\${LOG_KEY}" }` }),
    { TLS_KEY_PASSPHRASE: 's3cret-pass-4711', LOG_KEY: 'a-log-key-0123456789' },
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.request_id, { header: 'x-trace-id', trust: false });
  assert.deepEqual(config.server.log, { openid_hmac_key: 'a-log-key-0123456789' });
});

test('the request id header must be a header of its own, in the `-` spelling', async () => {
  for (const [name, message] of [
    ['X_Trace_ID', 'is not the `-` spelling'],
    ['content-length', 'already means something else'],
    ['traceparent', 'already means something else'],
    ['x-forwarded-for', 'is one of the forwarding headers the gateway states itself'],
    ['x-real-ip', 'already carries a client claim or the verified identity'],
    ['x-wx-openid', 'already carries a client claim or the verified identity'],
  ] as const) {
    expectDiagnostics(await reject(edit({ 8: `${LIMITS}\n  request_id: { header: ${name} }` })), [
      { line: 9, col: 25, path: 'server.request_id.header', message: [`\`${name}\` ${message}`] },
    ]);
  }
});

test('the log key is a secret: written in the policy itself it is warned about', async () => {
  const { warnings } = await accept(edit({ 8: `${LIMITS}\n  log: { openid_hmac_key: plain-text-key }` }));
  assert.ok(
    warnings.some((w) => w.path === 'server.log.openid_hmac_key' && /secret written into the policy file/.test(w.message)),
    warnings.map((w) => `${w.path}: ${w.message}`).join('\n'),
  );
});

test('a user agent: control characters escaped, at most USER_AGENT_MAX characters kept', () => {
  assert.equal(userAgent('a\x00b\nc\x1b[31md\x7fe\tf'), 'a\\x00b\\x0ac\\x1b[31md\\x7fe\\x09f');
  assert.equal(userAgent('MicroMessenger/8.0 中文'), 'MicroMessenger/8.0 中文');
  assert.equal(userAgent('u'.repeat(1000))!.length, USER_AGENT_MAX);
  assert.equal(userAgent(undefined), undefined);
  assert.equal(userAgent(''), undefined);
});
