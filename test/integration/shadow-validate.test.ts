// `wxgw validate` lists every rule in report mode, so that none is forgotten after a rollout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import { repoRoot } from '../helpers/process.js';

function validate(file: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'validate', '--config', file], { encoding: 'utf8', cwd: repoRoot, timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('validate prints which routes have rules in report mode, with the line of each route', async () => {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'gateway.yaml');
  const policy = (routes: string) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
defaults:
  allow: any
upstreams:
  legacy: { url: "http://127.0.0.1:9000" }
routes:
${routes}`;
  writeFileSync(
    file,
    policy(`  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    allow: [10.0.0.0/8]
    report: [allow, cors]
  - name: orders
    match: { path_prefix: /orders/ }
    upstream: legacy
    rate_limit: [{ key: ip, limit: 10, window: 1s }, { key: ip, limit: 100, window: 1m, mode: report }]
  - name: quiet
    match: { path_prefix: /quiet/ }
    upstream: legacy
`),
  );
  const r = validate(file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /policy OK: 3 route\(s\)/);
  assert.match(r.stdout, /report mode: 2 route\(s\) have rules that are counted, not enforced:/);
  assert.match(r.stdout, /gateway\.yaml:13 {2}api: allow, cors\n/);
  assert.match(r.stdout, /gateway\.yaml:18 {2}orders: rate_limit routes\[1\]\.rate_limit\[1\]\n/);
  assert.doesNotMatch(r.stdout, /quiet/);

  writeFileSync(file, policy(`  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }\n`));
  const clean = validate(file);
  assert.equal(clean.status, 0, clean.stderr);
  assert.doesNotMatch(clean.stdout, /report mode/);
});
