// `wxgw scan --policy FILE`: the static lint through the real CLI. A bad policy gets each
// finding at its line; a rejected one gets validate's own errors; the shipped example policy
// gets only the two weaknesses it keeps on purpose for a localhost demo. Its JSON and SARIF
// outputs are checked against their schemas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { policyContext } from '../helpers/gateway.js';
import { repoRoot } from '../helpers/process.js';
import { runScan, type JsonReport } from '../helpers/scan-targets.js';
import { sarifErrors, scanJsonErrors } from '../helpers/scan-schemas.js';

const EXAMPLE_ENV = {
  WX_APP_SECRET: 'example-app-secret',
  WX_TOKEN: 'exampleToken123',
  WX_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  SESSION_SIGNING_KEY: 'example-session-signing-key-of-32-bytes!',
};

/** 1-based line of the first line containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${needle} not in the policy`);
  return i + 1;
}

async function badPolicy(): Promise<{ file: string; text: string }> {
  const ctx = await policyContext();
  const text = `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "0.0.0.0:${ctx.adminPort}" }
  headers: { underscores: allow }
  paths: { semicolons: keep }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
defaults:
  allow: any
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    cors: { origins: ["*"] }
  - name: notify
    match: { path: /pay/notify }
    upstream: legacy
  - name: admin
    match: { path_prefix: /admin/ }
    upstream: legacy
`;
  const file = join(ctx.dir, 'bad.yaml');
  writeFileSync(file, text);
  return { file, text };
}

test('a bad policy: each weakness reported at its line, exit 1', async () => {
  const { file, text } = await badPolicy();
  const r = await runScan(['--policy', file, '--format', 'json']);
  assert.equal(r.status, 1, r.stderr);
  const report = JSON.parse(r.stdout) as JsonReport;
  assert.equal(scanJsonErrors(report), '');
  assert.equal(report.requests, null, 'a lint sends nothing');
  const at = (rule: string, line: number, message: RegExp): void => {
    const f = report.findings.find((x) => x.rule === rule && x.location?.line === line && message.test(x.message));
    assert.ok(f && (f.level === 'error' || f.level === 'warning' || f.level === 'note'), `${rule} at line ${line} matching ${message}:\n${r.stdout}`);
    assert.equal(f.location?.file, file);
  };
  at('WX2-HSTS', lineOf(text, 'tls:'), /no tls\.hsts/);
  at('WX5-ADMIN-EXPOSED', lineOf(text, 'admin: { listen'), /not a loopback address/);
  at('WX6-PARSER-DIFFERENTIAL', lineOf(text, 'underscores: allow'), /header names with `_` are passed on/);
  at('WX6-PARSER-DIFFERENTIAL', lineOf(text, 'semicolons: keep'), /path parameters are kept/);
  at('WX5-NO-RATE-LIMIT', lineOf(text, '- name: api'), /route api .* has no rate limit/);
  at('WX4-UNMASKED-ROUTE', lineOf(text, '- name: api'), /has no mask profile/);
  at('WX3-CORS-WILDCARD', lineOf(text, 'cors: {'), /origin \*/);
  at('WX5-CALLBACK-UNVERIFIED', lineOf(text, '- name: notify'), /looks like a callback but has neither wechat_callback nor wechatpay_notify/);
  at('WX5-ADMIN-EXPOSED', lineOf(text, '- name: admin'), /open to every address/);

  // The same findings as SARIF: every result points at the policy file and line.
  const s = await runScan(['--policy', file, '--format', 'sarif']);
  assert.equal(s.status, 1);
  const sarif = JSON.parse(s.stdout) as {
    runs: { tool: { driver: { rules: { id: string }[] } }; results: { ruleId: string; ruleIndex: number; level: string; locations: { physicalLocation?: { artifactLocation: { uri: string }; region: { startLine: number } } }[] }[] }[];
  };
  assert.equal(sarifErrors(sarif), '');
  const run = sarif.runs[0]!;
  const failing = report.findings.filter((f) => f.level !== 'pass');
  assert.equal(run.results.length, failing.length);
  for (const res of run.results) {
    assert.equal(run.tool.driver.rules[res.ruleIndex]!.id, res.ruleId);
    const loc = res.locations[0]!.physicalLocation!;
    assert.equal(loc.artifactLocation.uri, pathToFileURL(file).href, 'outside the working directory: a file: URI');
    assert.ok(loc.region.startLine >= 1);
  }
  const hsts = run.results.find((x) => x.ruleId === 'WX2-HSTS')!;
  assert.equal(hsts.level, 'error');
  assert.equal(hsts.locations[0]!.physicalLocation!.region.startLine, lineOf(text, 'tls:'));
});

test('a lax callback window and a mask profile that keeps unionid: warnings at their lines', async () => {
  const ctx = await policyContext();
  const text = `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
  hsts: { max_age: 365d, include_subdomains: true }
wechat:
  appid: wx1234567890abcdef
  token: tok3nForLintTests
mask_profiles:
  thin:
    drop: [session_key]
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
defaults:
  allow: any
  rate_limit: { key: ip, limit: 100, window: 60s }
  mask: thin
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
  - name: push
    match: { path: /wx/callback }
    upstream: legacy
    wechat_callback: { max_skew: 600s }
    mask: off
`;
  const file = join(ctx.dir, 'lax.yaml');
  writeFileSync(file, text);
  const r = await runScan(['--policy', file, '--format', 'json']);
  const report = JSON.parse(r.stdout) as JsonReport;
  const failing = report.findings.filter((f) => f.level === 'error' || f.level === 'warning');
  assert.deepEqual(
    failing.map((f) => [f.rule, f.level, f.location?.line]),
    [
      ['WX4-UNMASKED-ROUTE', 'warning', lineOf(text, '  thin:')],
      ['WX5-CALLBACK-UNVERIFIED', 'warning', lineOf(text, 'max_skew: 600s')],
    ],
    r.stdout,
  );
  assert.match(failing[0]!.message, /does not drop unionid/);
  assert.match(failing[1]!.message, /600 s old/);
  assert.equal(r.status, 1);
});

test('a policy wxgw would reject: the errors validate gives, with their lines, exit 1', async () => {
  const { file, text } = await badPolicy();
  const broken = text.replace('    upstream: legacy\n    cors:', '    upstraem: legacy\n    cors:');
  writeFileSync(file, broken);
  const r = await runScan(['--policy', file]);
  assert.equal(r.status, 1, r.stderr);
  const validate = spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'validate', '--config', file], { encoding: 'utf8' });
  assert.equal(validate.status, 1);
  const line = lineOf(broken, 'upstraem');
  assert.match(r.stdout, new RegExp(`FAIL WX0-POLICY-INVALID ${file.replace(/[.]/g, '\\.')}:${line}:\\d+  routes\\[0\\]`));
  // Each of validate's messages appears in the scan's report.
  for (const l of validate.stderr.split('\n').filter((x) => x.includes(`:${line}:`))) {
    const message = l.split('  ').slice(2).join('  ');
    assert.ok(r.stdout.includes(message), `${message} missing from:\n${r.stdout}`);
  }
});

test('the shipped example policy: only the two weaknesses it keeps for a localhost demo', async () => {
  const ctx = await policyContext();
  mkdirSync(join(ctx.dir, 'config'));
  mkdirSync(join(ctx.dir, 'certs'));
  copyFileSync(join(repoRoot, 'config/gateway.example.yaml'), join(ctx.dir, 'config/gateway.yaml'));
  copyFileSync(ctx.chain.root, join(ctx.dir, 'certs/root.pem'));
  copyFileSync(ctx.chain.fullchain, join(ctx.dir, 'certs/fullchain.pem'));
  copyFileSync(ctx.chain.key, join(ctx.dir, 'certs/privkey.pem'));
  const r = await runScan(['--policy', join(ctx.dir, 'config/gateway.yaml'), '--format', 'json'], EXAMPLE_ENV);
  const report = JSON.parse(r.stdout) as JsonReport;
  const failing = report.findings.filter((f) => f.level === 'error' || f.level === 'warning');
  // HSTS for one day (a localhost certificate from a private CA) and an /admin/ route open to
  // anyone so that the demo can be tried; both are commented as such in the file.
  assert.deepEqual(failing.map((f) => f.rule).sort(), ['WX2-HSTS', 'WX5-ADMIN-EXPOSED'], r.stdout);
  assert.equal(r.status, 1);
  for (const rule of ['WX1-CHAIN', 'WX3-CORS-CREDENTIALS', 'WX4-UNMASKED-ROUTE', 'WX5-CALLBACK-UNVERIFIED', 'WX5-NO-RATE-LIMIT', 'WX6-PARSER-DIFFERENTIAL']) {
    assert.ok(report.findings.some((f) => f.rule === rule && f.level === 'pass'), `${rule} passes:\n${r.stdout}`);
  }
});
