// What a cluster's primary sends its workers (cluster/carry.ts): the checked policy with its
// certificates, through the same v8 serialization the IPC channel uses, arrives as the same
// policy (same hash), with certificates that serve, and compiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { compileCheck, loadChecked } from '../../gateway/main.js';
import { arrive, carry } from '../../gateway/cluster/carry.js';
import { policyView } from '../../gateway/policy/policy-view.js';
import { policyContext } from '../helpers/gateway.js';

test('a policy carried to a worker arrives whole: same hash, URLs as URLs, certificates that serve, and it compiles', async () => {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  workers: 2
${ctx.tlsSection}
upstreams:
  up: { url: "http://127.0.0.1:9/base" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: up, rate_limit: { key: ip, limit: 5, window: 1m } }
defaults: { allow: any }
`,
  );
  const loaded = await loadChecked(file);
  const arrived = await arrive(deserialize(serialize(carry(loaded))) as ReturnType<typeof carry>);
  assert.equal(policyView(arrived.config).hash, policyView(loaded.config).hash);
  assert.ok(arrived.config.upstreams.get('up')!.url instanceof URL);
  assert.equal(arrived.certificates.length, 1);
  const [was, now] = [loaded.certificates[0]!, arrived.certificates[0]!];
  assert.deepEqual(now.chain.map((c) => c.fingerprint256), was.chain.map((c) => c.fingerprint256));
  assert.deepEqual([now.names, now.notAfter.getTime(), now.certFile, now.pos], [was.names, was.notAfter.getTime(), was.certFile, was.pos]);
  assert.ok(now.secureContext.context, 'a secure context was built from the carried options');
  await compileCheck(arrived);
});
