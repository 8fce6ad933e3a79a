import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadPolicy } from '../../gateway/policy/load.js';
import { PolicyError, formatDiagnostic } from '../../gateway/types/policy.js';
import { BASE, ROOT, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

test('a YAML syntax error is a diagnostic at the position the yaml parser gives', async () => {
  const text = edit({ 3: '  https: { listen: "0.0.0.0:8443"' });
  expectDiagnostics(await reject(text), [
    { line: 4, col: 3, path: '', message: ['YAML syntax:', 'Flow map', 'end with a }'] },
  ]);
});

test('an unclosed quote and a tab indentation are syntax errors too; only the first one is told', async () => {
  expectDiagnostics(await reject(edit({ 6: '  public_host: "api.example.com' })), [
    { line: 6, col: 32, path: '', message: ['YAML syntax:', 'Missing closing "quote'] },
  ]);
  expectDiagnostics(await reject(edit({ 10: '\tmin_version: TLSv1.3' })), [
    { line: 10, col: 1, path: '', message: ['YAML syntax:', 'Tabs are not allowed as indentation'] },
  ]);
});

test('the formatted diagnostic is FILE:LINE:COL  key.path  message', async () => {
  const [d] = await reject(edit({ 10: '  min_version: TLSv1.4' }));
  assert.equal(
    formatDiagnostic(d!),
    `${join(ROOT, 'gw', 'policy.yaml')}:10:16  tls.min_version  \`TLSv1.4\` is not one of TLSv1.2, TLSv1.3; did you mean \`TLSv1.2\`?`,
  );
});

test('duplicate keys are errors at the second key, naming the first one\'s line', async () => {
  const text = edit({ 2: 'version: 1\nserver:', 5: '  admin: { listen: "127.0.0.1:9901" }\n  https: { listen: "0.0.0.0:9443" }' });
  expectDiagnostics(await reject(text), [
    { line: 2, col: 1, path: 'version', message: ['duplicate key `version`', 'already set at line 1'] },
    { line: 7, col: 3, path: 'server.https', message: ['duplicate key `https`', 'already set at line 4'] },
  ]);
});

test('duplicate keys inside a flow mapping are found too', async () => {
  const text = edit({ 18: '  legacy: { url: "http://127.0.0.1:9000", timeout: 10s, url: "http://127.0.0.1:9001" }' });
  expectDiagnostics(await reject(text), [
    { line: 18, col: 57, path: 'upstreams.legacy.url', message: ['duplicate key `url`', 'line 18'] },
  ]);
});

test('merge keys take the keys of an anchored mapping; keys written beside them win', async () => {
  const text = edit({
    18: '  legacy: &up { url: "http://127.0.0.1:9000", timeout: 10s }',
    19: '  billing: { <<: *up, timeout: 5s }',
  });
  const { config } = await accept(text);
  const billing = config.upstreams.get('billing')!;
  assert.equal(billing.url.href, 'http://127.0.0.1:9000/');
  assert.equal(billing.timeout, 5000);
});

test('a merged value that is wrong is reported once, where it is written', async () => {
  const text = edit({ 18: '  legacy: &up { url: "http://127.0.0.1:9000", timeout: 10 }', 19: '  billing: { <<: *up }' });
  expectDiagnostics(await reject(text), [
    { line: 18, col: 56, path: 'upstreams.legacy.timeout', message: ['`10` has no unit'] },
  ]);
  expectDiagnostics(await reject(edit({ 19: '  billing: { <<: [1, 2] }' })), [
    { line: 19, col: 3, path: 'upstreams.billing', message: ['needs `url` (one backend) or `targets`'] },
    { line: 19, col: 14, path: 'upstreams.billing["<<"]', message: ['`<<` merges mappings only'] },
  ]);
});

test('aliases are followed like the value they name', async () => {
  const text = edit({ 18: '  legacy: { url: "http://127.0.0.1:9000", timeout: &t 10s }', 19: '  billing: { url: "https://billing.internal:9443/v1", timeout: *t }' });
  const { config } = await accept(text);
  assert.equal(config.upstreams.get('billing')!.timeout, 10_000);
});

test('an empty policy, or one that is not a mapping, says what is expected', async () => {
  expectDiagnostics(await reject('# nothing yet\n'), [
    { line: 1, col: 1, path: '', message: ['the policy is empty', 'version, server, tls, upstreams and routes'] },
  ]);
  expectDiagnostics(await reject('- version: 1\n'), [{ line: 1, col: 1, path: '', message: ['expected a mapping, found a list'] }]);
});

test('an unreadable policy file is a PolicyError at line 1, column 1 with the OS error', async () => {
  const missing = join(ROOT, 'gw', 'nope.yaml');
  await assert.rejects(loadPolicy(missing), (err: unknown) => {
    assert.ok(err instanceof PolicyError);
    expectDiagnostics(err.diagnostics, [{ line: 1, col: 1, path: '', message: ['cannot read the policy file', 'ENOENT'] }], missing);
    return true;
  });
  await assert.rejects(loadPolicy(ROOT), (err: unknown) => {
    assert.ok(err instanceof PolicyError);
    expectDiagnostics(err.diagnostics, [{ line: 1, col: 1, path: '', message: ['EISDIR'] }], ROOT);
    return true;
  });
});

test('BASE itself is valid (the other tests depend on it)', async () => {
  const { warnings } = await accept(BASE);
  assert.deepEqual(warnings, []);
});
