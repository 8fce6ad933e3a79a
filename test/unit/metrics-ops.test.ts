// The pieces of the operations metrics on their own: how a TLS error becomes a reason, the one
// policy_info series, the store timer, and what a reload reports as changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, tlsFailure } from '../../gateway/observability/metrics.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { timedStore } from '../../gateway/store/timed-store.js';
import { policyChanges } from '../../gateway/policy/policy-view.js';
import type { PolicyConfig } from '../../gateway/types/policy.js';
import { sample } from '../helpers/metrics-text.js';

const err = (code: string | undefined): NodeJS.ErrnoException => Object.assign(new Error(code ?? 'none'), code === undefined ? {} : { code });

test('TLS errors become a reason of a bounded set', () => {
  const cases: [string | undefined, string][] = [
    ['ERR_TLS_HANDSHAKE_TIMEOUT', 'timeout'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'protocol'],
    ['ERR_SSL_HTTP_REQUEST', 'protocol'],
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'protocol'],
    ['ERR_SSL_NO_SHARED_CIPHER', 'no_shared_cipher'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'certificate_rejected'],
    ['ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE', 'certificate_rejected'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'certificate_rejected'],
    ['ECONNRESET', 'client_closed'],
    ['ENOMEM', 'other'],
    [undefined, 'other'],
  ];
  for (const [code, reason] of cases) assert.equal(tlsFailure(err(code)), reason, String(code));
});

test('policy_info keeps one series, the policy in force; the store timer observes every operation, failures included', async () => {
  const metrics = new Metrics(() => [], () => ({ kind: 'memory', connected: true }));
  metrics.policyInForce('sha256:aa', new Date(1_000_000));
  metrics.policyInForce('sha256:bb', new Date(2_500_000));
  const failing = Object.assign(new MemoryStore(), { get: () => Promise.reject(new Error('down')) });
  const store = timedStore(failing, metrics.storeTimer('memory'));
  assert.equal(await store.claim('k', 1000), true);
  assert.equal(await store.claim('k', 1000), false);
  await assert.rejects(store.get('k'), /down/);
  await store.close();
  const text = await metrics.registry.metrics();
  assert.equal(sample(text, 'wxgw_policy_info{hash="sha256:bb"}'), 1);
  assert.equal(sample(text, 'wxgw_policy_info{hash="sha256:aa"}'), undefined);
  assert.equal(sample(text, 'wxgw_last_reload_success_timestamp_seconds'), 2500);
  assert.equal(sample(text, 'wxgw_store_operation_duration_seconds_count{kind="memory",operation="claim"}'), 2);
  assert.equal(sample(text, 'wxgw_store_operation_duration_seconds_count{kind="memory",operation="get"}'), 1);
  assert.equal(sample(text, 'wxgw_ready'), 1, 'ready without a readiness source');
});

test('a reload reports routes added, removed and changed by name, and other sections changed', () => {
  const policy = (routes: object[], wechat?: object): PolicyConfig =>
    ({ version: 1, file: '/x.yaml', server: { a: 1 }, routes, upstreams: new Map([['u', { url: 'http://u' }]]), ...(wechat && { wechat }) }) as unknown as PolicyConfig;
  const a = policy([{ name: 'keep', pos: { line: 1 } }, { name: 'edit', path: '/a' }, { name: 'drop' }], { token: 'one' });
  const b = policy([{ name: 'edit', path: '/b' }, { name: 'keep', pos: { line: 9 } }, { name: 'new' }], { token: 'two' });
  assert.deepEqual(policyChanges(a, b), { routes_added: ['new'], routes_removed: ['drop'], routes_changed: ['edit'], sections_changed: ['wechat'] });
  assert.deepEqual(policyChanges(a, a), { routes_added: [], routes_removed: [], routes_changed: [], sections_changed: [] });
});
