// The `tracing` section: off unless present, the defaults when only the endpoint is given, export
// headers treated as secrets, and endpoints that would not work or would leak refused at their key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, ENV, accept, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

/** BASE with a tracing section appended: `tracing:` is line 29. */
const withTracing = (...lines: string[]): string => BASE + ['tracing:', ...lines.map((l) => `  ${l}`)].join('\n') + '\n';

test('no tracing section: no tracing', async () => {
  const { config } = await accept(BASE);
  assert.equal(config.tracing, undefined);
});

test('an endpoint alone takes every default; headers come resolved from the environment', async () => {
  const { config } = await accept(withTracing('otlp_endpoint: "http://collector:4318/v1/traces"'));
  const { pos: _pos, ...tracing } = config.tracing!;
  assert.deepEqual(tracing, { otlp_endpoint: 'http://collector:4318/v1/traces', sample_ratio: 1, service_name: 'wxgw', trust_incoming: true, headers: {} });
  const tuned = await accept(
    withTracing('otlp_endpoint: "https://collector:4318/v1/traces"', 'sample_ratio: 0.25', 'service_name: api-gw', 'trust_incoming: false', 'headers: { authorization: "Bearer ${OTLP_TOKEN}" }'),
    { ...ENV, OTLP_TOKEN: 'tok-1' },
  );
  assert.equal(tuned.config.tracing!.sample_ratio, 0.25);
  assert.equal(tuned.config.tracing!.trust_incoming, false);
  assert.deepEqual(tuned.config.tracing!.headers, { authorization: 'Bearer tok-1' });
});

test('a header value written into the file is warned about as a secret', async () => {
  const { warnings } = await accept(withTracing('otlp_endpoint: "http://collector:4318/v1/traces"', 'headers: { x-api-key: abc123 }'));
  assert.ok(warnings.some((w) => w.path === 'tracing.headers.x-api-key' && /secret/.test(w.message)), JSON.stringify(warnings));
});

test('wrong tracing values are refused at their key', async () => {
  expectDiagnostics(await reject(withTracing('sample_ratio: 1')), [{ line: 30, col: 3, path: 'tracing.otlp_endpoint', message: ['is required'] }]);
  expectDiagnostics(await reject(withTracing('otlp_endpoint: "http://collector:4318/v1/traces"', 'sample_ratio: 1.5')), [
    { line: 31, col: 17, path: 'tracing.sample_ratio', message: ['1'] },
  ]);
  expectDiagnostics(await reject(withTracing('otlp_endpoint: "http://"')), [{ line: 30, col: 18, path: 'tracing.otlp_endpoint', message: ['is not a URL'] }]);
  expectDiagnostics(await reject(withTracing('otlp_endpoint: "http://user:pw@collector:4318/v1/traces"')), [
    { line: 30, col: 18, path: 'tracing.otlp_endpoint', message: ['carries credentials', 'tracing.headers'] },
  ]);
});
