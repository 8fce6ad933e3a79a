// store.redis_url, store.cluster and store.sentinels: the three ways to name the store's Redis,
// exactly one of them, each checked where it is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REDACTED, policyView } from '../../gateway/policy/policy-view.js';
import { ENV, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

/** BASE with `lines` as the store section, starting at line 17. */
const withStore = (...lines: string[]): string => edit({ 17: ['store:', ...lines, 'upstreams:'].join('\n') });

test('a cluster: seed nodes (names, IPv4, bracketed IPv6) and the credentials of every node', async () => {
  const text = withStore(
    '  kind: redis',
    '  cluster:',
    '    nodes: ["redis-a.internal:6379", "10.0.0.5:7000", "[2001:DB8::5]:6380"]',
    '    username: wxgw',
    '    password: ${REDIS_PASSWORD}',
    '    tls: true',
  );
  const { config } = await accept(text, { ...ENV, REDIS_PASSWORD: 'pw-cluster' });
  assert.deepEqual(
    { ...config.store, pos: undefined },
    {
      kind: 'redis',
      cluster: {
        nodes: [
          { host: 'redis-a.internal', port: 6379 },
          { host: '10.0.0.5', port: 7000 },
          { host: '2001:db8::5', port: 6380 },
        ],
        username: 'wxgw',
        password: 'pw-cluster',
        tls: true,
      },
      key_prefix: 'wxgw:',
      command_timeout: 200,
      on_unavailable: 'deny',
      pos: undefined,
    },
  );
});

test('sentinels: hosts, the master name, and separate passwords for the master and the sentinels', async () => {
  const text = withStore(
    '  kind: redis',
    '  sentinels:',
    '    hosts: ["sentinel-a:26379", "sentinel-b:26379"]',
    '    name: mymaster',
    '    password: ${REDIS_PASSWORD}',
    '    sentinel_password: ${SENTINEL_PASSWORD}',
  );
  const { config } = await accept(text, { ...ENV, REDIS_PASSWORD: 'pw-master', SENTINEL_PASSWORD: 'pw-sentinel' });
  assert.deepEqual(config.store.sentinels, {
    hosts: [
      { host: 'sentinel-a', port: 26379 },
      { host: 'sentinel-b', port: 26379 },
    ],
    name: 'mymaster',
    password: 'pw-master',
    sentinel_password: 'pw-sentinel',
    tls: false,
  });
  assert.equal(config.store.redis_url, undefined);
  assert.equal(config.store.cluster, undefined);
});

test('exactly one of redis_url, cluster and sentinels: a second one is an error at its key', async () => {
  const text = withStore(
    '  kind: redis',
    '  redis_url: "redis://127.0.0.1:6379"',
    '  cluster: { nodes: ["127.0.0.1:7000"] }',
    '  sentinels: { hosts: ["127.0.0.1:26379"], name: mymaster }',
  );
  expectDiagnostics(await reject(text), [
    { line: 20, col: 12, path: 'store.cluster', message: ['conflicts with `redis_url`', 'one way only'] },
    { line: 21, col: 14, path: 'store.sentinels', message: ['conflicts with `redis_url`', 'one way only'] },
  ]);
});

test('kind redis naming no Redis says the three ways; kind memory ignores cluster with a warning', async () => {
  expectDiagnostics(await reject(withStore('  kind: redis')), [
    { line: 18, col: 9, path: 'store.kind', message: ['`redis` needs `redis_url` (one server), `cluster` or `sentinels`'] },
  ]);
  const { warnings } = await accept(withStore('  kind: memory', '  cluster: { nodes: ["127.0.0.1:7000"] }'));
  expectDiagnostics(warnings, [{ line: 19, col: 12, path: 'store.cluster', severity: 'warning', message: ['is ignored: store.kind is memory'] }]);
});

test('a node that is not host:port is an error at that element; a repeated one a warning', async () => {
  const text = withStore(
    '  kind: redis',
    '  cluster:',
    '    nodes:',
    '      - "redis://10.0.0.1:6379"',
    '      - "10.0.0.2"',
    '      - "2001:db8::1:6379"',
    '      - "10.0.0.3:70000"',
    '      - "[10.0.0.4]:6379"',
    '      - "10.0.0.5:6379"',
  );
  expectDiagnostics(await reject(text), [
    { line: 21, col: 9, path: 'store.cluster.nodes[0]', message: ['is a URL', 'expected host:port'] },
    { line: 22, col: 9, path: 'store.cluster.nodes[1]', message: ['has no port'] },
    { line: 23, col: 9, path: 'store.cluster.nodes[2]', message: ['IPv6 address without brackets'] },
    { line: 24, col: 9, path: 'store.cluster.nodes[3]', message: ['outside 1..65535'] },
    { line: 25, col: 9, path: 'store.cluster.nodes[4]', message: ['not an IPv6 address'] },
  ]);
  const repeated = withStore('  kind: redis', '  sentinels: { hosts: ["s1:26379", "S1:26379"], name: m }');
  expectDiagnostics((await accept(repeated)).warnings, [
    { line: 19, col: 36, path: 'store.sentinels.hosts[1]', severity: 'warning', message: ['repeats hosts[0] (s1:26379)'] },
  ]);
});

test('sentinels need a name, and a cluster its nodes', async () => {
  const diagnostics = await reject(withStore('  kind: redis', '  sentinels: { hosts: ["s1:26379"] }'));
  assert.equal(diagnostics.length, 1);
  assert.equal(diagnostics[0]!.path, 'store.sentinels.name');
  assert.match(diagnostics[0]!.message, /is required but missing/);
  const empty = await reject(withStore('  kind: redis', '  cluster: { nodes: [] }'));
  assert.equal(empty.length, 1);
  assert.equal(empty[0]!.path, 'store.cluster.nodes');
});

test("/config shows neither the cluster's nor the sentinels' passwords", async () => {
  const cluster = await accept(withStore('  kind: redis', '  cluster:', '    nodes: ["redis-a.internal:6379"]', '    password: ${REDIS_PASSWORD}'), { ...ENV, REDIS_PASSWORD: 'pw-cluster-9f2' });
  const sentinels = await accept(
    withStore('  kind: redis', '  sentinels:', '    hosts: ["sentinel-a:26379"]', '    name: mymaster', '    password: ${REDIS_PASSWORD}', '    sentinel_password: ${SENTINEL_PASSWORD}'),
    { ...ENV, REDIS_PASSWORD: 'pw-master-4c1', SENTINEL_PASSWORD: 'pw-sentinel-7e3' },
  );
  const shown = JSON.stringify([policyView(cluster.config).view, policyView(sentinels.config).view]);
  for (const secret of ['pw-cluster-9f2', 'pw-master-4c1', 'pw-sentinel-7e3']) assert.ok(!shown.includes(secret), `${secret} is in /config`);
  assert.equal((policyView(cluster.config).view.store as { cluster: { password: string } }).cluster.password, REDACTED);
  assert.equal((policyView(sentinels.config).view.store as { sentinels: { sentinel_password: string } }).sentinels.sentinel_password, REDACTED);
});
