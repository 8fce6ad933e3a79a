// `wxgw scan` as ops run it: the built CLI against a deliberately non-compliant HTTPS backend
// (every pattern reported, with evidence, exit 1), against the real gateway with a good policy
// in front of that same backend (nothing reported, exit 0), and its own safety: it sends what it
// says it sent, never more than its cap, and nothing to any other host or port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startTestGateway } from '../helpers/gateway.js';
import { repoRoot } from '../helpers/process.js';
import { startUpstream } from '../helpers/upstream.js';
import { randomEncodingAesKey } from '../helpers/wechat-callback.js';
import { externalReferences, sarifErrors, scanJsonErrors } from '../helpers/scan-schemas.js';
import { LEAKED, INJECTED, legacyHandler, runScan, startLegacyTarget, type JsonReport } from '../helpers/scan-targets.js';

const FAST = ['--rate', '100'];

function failingRules(report: JsonReport): string[] {
  return [...new Set(report.findings.filter((f) => f.level === 'error' || f.level === 'warning').map((f) => f.rule))].sort();
}

function evidenceOf(report: JsonReport, rule: string): string {
  return report.findings
    .filter((f) => f.rule === rule && f.level === 'error')
    .map((f) => [f.message, ...f.evidence].join('\n'))
    .join('\n');
}

test('a non-compliant backend: every pattern is reported with its evidence, exit 1', async () => {
  const target = await startLegacyTarget();
  try {
    const url = `https://127.0.0.1:${target.httpsPort}`;
    const common = [url, '--path', '/api/user', '--callback', '/wx/callback', '--ca', target.root, '--http-port', String(target.httpPort), ...FAST];
    const r = await runScan([...common, '--format', 'json']);
    assert.equal(r.status, 1, r.stderr);
    const report = JSON.parse(r.stdout) as JsonReport;
    assert.equal(scanJsonErrors(report), '');
    assert.equal(report.result, 'fail');
    for (const rule of ['WX1-CHAIN', 'WX1-TLS-VERSION', 'WX2-PLAIN-HTTP', 'WX2-HSTS', 'WX3-CORS-CREDENTIALS', 'WX4-SENSITIVE-DATA', 'WX5-CALLBACK-UNVERIFIED', 'WX5-NO-RATE-LIMIT', 'WX6-PARSER-DIFFERENTIAL']) {
      assert.ok(report.findings.some((f) => f.rule === rule && f.level === 'error'), `${rule} reported as an error:\n${r.stdout}`);
    }
    // 1: the chain as served, and the intermediate that is missing, by name.
    assert.match(evidenceOf(report, 'WX1-CHAIN'), /chain incomplete/);
    assert.match(evidenceOf(report, 'WX1-CHAIN'), /served #1: "CN=localhost", issued by "CN=Test Intermediate CA"/);
    assert.match(evidenceOf(report, 'WX1-CHAIN'), /missing: the intermediate "CN=Test Intermediate CA" \(the issuer of "CN=localhost"\); the certificate says it can be fetched from http:\/\/pki\.example\.test\/intermediate\.crt/);
    assert.match(evidenceOf(report, 'WX1-TLS-VERSION'), /TLSv1: accepted/);
    // 2: plain HTTP answers instead of redirecting; no HSTS.
    assert.match(evidenceOf(report, 'WX2-PLAIN-HTTP'), new RegExp(`GET http://127\\.0\\.0\\.1:${target.httpPort}/api/user -> 200`));
    assert.match(evidenceOf(report, 'WX2-HSTS'), /no Strict-Transport-Security/);
    // 3: both the lookalike and the null origin are reflected with credentials.
    const cors = evidenceOf(report, 'WX3-CORS-CREDENTIALS');
    assert.match(cors, /Origin: https:\/\/evil-127\.0\.0\.1 -> 200, Access-Control-Allow-Origin: https:\/\/evil-127\.0\.0\.1, Access-Control-Allow-Credentials: true/);
    assert.match(cors, /Origin: null -> 200, Access-Control-Allow-Origin: null/);
    // 4: by key and by shape, masked in the report.
    const data = evidenceOf(report, 'WX4-SENSITIVE-DATA');
    assert.match(data, /\$\.data\.session_key \(key session_key\)/);
    assert.match(data, /\$\.data\.unionid \(key unionid\)/);
    assert.match(data, /\$\.data\.phone \(shape cn_mobile, key phone\): 138\*\*\*\*5678/);
    for (const secret of Object.values(LEAKED)) assert.ok(!r.stdout.includes(secret), `${secret} shown unmasked`);
    // 5: both forged callbacks accepted; 30 requests never limited.
    const callback = evidenceOf(report, 'WX5-CALLBACK-UNVERIFIED');
    assert.match(callback, /URL check with a forged signature is accepted: the echostr came back/);
    assert.match(callback, /push with a forged signature and a stale timestamp is accepted \(200\)/);
    assert.match(evidenceOf(report, 'WX5-NO-RATE-LIMIT'), /30 GET .* in a row -> 30× 200/);
    assert.match(evidenceOf(report, 'WX6-PARSER-DIFFERENTIAL'), /X_WX_OpenID as X-WX-OpenID/);

    // The same scan for a person: the same findings, the total it sent.
    const text = await runScan(common);
    assert.equal(text.status, 1);
    assert.match(text.stdout, /\[fail\] 1\. Certificate chain and TLS/);
    assert.match(text.stdout, /FAIL WX4-SENSITIVE-DATA/);
    assert.match(text.stdout, /requests sent: \d+ \(\d+ HTTP requests, \d+ TLS handshakes; cap 300\)/);
    assert.ok(!text.stdout.includes('\x1b['), 'no colour without a TTY');

    // And for code scanning: the probe findings name the URL as a logical location.
    const s = await runScan([...common, '--burst', '2', '--format', 'sarif']);
    const sarif = JSON.parse(s.stdout) as { runs: { results: { ruleId: string; locations: { logicalLocations?: { name: string }[] }[] }[] }[] };
    assert.equal(sarifErrors(sarif), '');
    const chain = sarif.runs[0]!.results.find((x) => x.ruleId === 'WX1-CHAIN')!;
    assert.equal(chain.locations[0]!.logicalLocations![0]!.name, `${url}/`);
  } finally {
    await target.close();
  }
});

test('the html report is one file with no external references, and escapes what the target sent', async () => {
  const target = await startLegacyTarget();
  try {
    const r = await runScan([`https://127.0.0.1:${target.httpsPort}`, '--path', '/api/user', '--callback', '/wx/callback', '--http-port', String(target.httpPort), '--burst', '2', ...FAST, '--format', 'html']);
    assert.equal(r.status, 1, r.stderr);
    const html = r.stdout;
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /Failed: \d+ problem\(s\)/);
    assert.ok(!html.includes(INJECTED), 'the backend\'s <script> reached the report unescaped');
    assert.ok(html.includes('&lt;script&gt;alert('), 'the backend\'s answer is shown escaped');
    assert.deepEqual(externalReferences(html), []);
  } finally {
    await target.close();
  }
});

test('wxgw with a good policy in front of the same backend: none of the five reported, exit 0', async () => {
  const upstream = await startUpstream((req, res) => legacyHandler(req, res));
  const account = { appid: 'wx1234567890abcdef', token: 'tok3nForScanTests', encodingAesKey: randomEncodingAesKey() };
  const gateway = await startTestGateway(
    (ctx) => `
version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  public_host: localhost
${ctx.tlsSection}
  hsts: { max_age: 365d, include_subdomains: true }
wechat:
  appid: ${account.appid}
  token: ${account.token}
  encoding_aes_key: "${account.encodingAesKey}"
mask_profiles:
  user:
    drop: [session_key, unionid]
    partial: { phone: { keep_start: 3, keep_end: 4 } }
    detect: [cn_mobile, cn_idcard]
upstreams:
  legacy: { url: "${upstream.url}" }
defaults:
  allow: any
  rate_limit: { key: ip, limit: 20, window: 60s }
  mask: user
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    cors: { origins: ["https://example.com"], credentials: true }
  - name: push
    match: { path: /wx/callback }
    upstream: legacy
    wechat_callback: { max_skew: 300s }
    mask: off
    rate_limit: off
`,
  );
  try {
    const r = await runScan([
      `https://127.0.0.1:${gateway.port}`,
      '--path', '/api/user',
      '--callback', '/wx/callback',
      '--ca', gateway.ctx.chain.root,
      '--http-port', String(gateway.ctx.httpPort),
      '--policy', join(gateway.ctx.dir, 'gateway.yaml'),
      ...FAST,
      '--format', 'json',
    ]);
    assert.notEqual(r.stdout, '', r.stderr);
    const report = JSON.parse(r.stdout) as JsonReport;
    assert.deepEqual(failingRules(report), [], r.stdout);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(report.result, 'pass');
    // The policy behind it lints clean too, each check at its line.
    assert.ok(report.findings.some((f) => f.rule === 'WX5-NO-RATE-LIMIT' && f.level === 'pass' && f.location !== null), r.stdout);
    // Checked, not skipped: each pattern has a pass of its own.
    for (const rule of ['WX1-CHAIN', 'WX1-TLS-VERSION', 'WX2-PLAIN-HTTP', 'WX2-OPEN-REDIRECT', 'WX2-HSTS', 'WX3-CORS-CREDENTIALS', 'WX4-SENSITIVE-DATA', 'WX5-CALLBACK-UNVERIFIED', 'WX5-NO-RATE-LIMIT', 'WX6-PARSER-DIFFERENTIAL']) {
      assert.ok(report.findings.some((f) => f.rule === rule && f.level === 'pass'), `${rule} passed:\n${r.stdout}`);
    }
    assert.ok(report.findings.some((f) => f.rule === 'WX5-NO-RATE-LIMIT' && /limited after \d+ request\(s\): 429/.test(f.message)), r.stdout);
    // No forged callback ever reached the backend.
    assert.ok(!upstream.received.some((q) => q.url.startsWith('/wx/callback')), 'a forged callback reached the backend');
  } finally {
    await gateway.close();
    await upstream.close();
  }
});

test('it sends exactly what it reports, never more than its cap, and nothing to another host or port', async () => {
  const elsewhere = { requests: 0 };
  const other = createServer((_req, res) => {
    elsewhere.requests++;
    res.end('elsewhere');
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  const away = `http://127.0.0.1:${(other.address() as AddressInfo).port}/stolen`;
  // Every answer points somewhere else: plain HTTP redirects there, HTTPS too.
  const redirect = (_req: unknown, res: import('node:http').ServerResponse): void => {
    res.writeHead(302, { location: away });
    res.end();
  };
  const target = await startLegacyTarget({ plain: redirect, https: redirect });
  try {
    const url = `https://127.0.0.1:${target.httpsPort}`;
    const args = [url, '--path', '/api/user', '--callback', '/wx/callback', '--http-port', String(target.httpPort), ...FAST, '--format', 'json'];
    const full = await runScan(args);
    const report = JSON.parse(full.stdout) as JsonReport;
    assert.ok(report.requests, full.stdout);
    assert.equal(target.counts.https + target.counts.http, report.requests.http, 'HTTP requests received = reported');
    assert.equal(target.counts.connections, report.requests.tls + target.counts.https, 'connections = handshakes + one per HTTPS request');
    assert.match(full.stderr, new RegExp(`^wxgw scan: ${report.requests.http + report.requests.tls} requests sent to ${url.replace(/\./g, '\\.')}\\n$`));
    assert.ok(report.findings.some((f) => f.rule === 'WX2-PLAIN-HTTP' && f.evidence.some((e) => e.includes(`Location: ${away}`))), 'the redirect is reported, not followed');
    assert.equal(elsewhere.requests, 0, 'the scanner followed a redirect to another port');

    for (const c of Object.keys(target.counts) as (keyof typeof target.counts)[]) target.counts[c] = 0;
    const capped = await runScan([...args, '--max-requests', '12']);
    const small = JSON.parse(capped.stdout) as JsonReport;
    assert.ok(small.requests?.capped, capped.stdout);
    assert.ok(small.findings.some((f) => f.rule === 'WX0-SCAN-INCOMPLETE' && f.level === 'warning'), 'an incomplete scan cannot pass');
    assert.equal(small.requests.http + small.requests.tls, 12);
    assert.equal(target.counts.https + target.counts.http, small.requests.http);
    assert.ok(target.counts.connections <= 12, `${target.counts.connections} connections under a cap of 12`);
    assert.equal(elsewhere.requests, 0);
  } finally {
    await target.close();
    await new Promise((r) => other.close(r));
  }
});

test('scan is in the CLI\'s help, and has its own', async () => {
  const own = await runScan(['--help']);
  assert.equal(own.status, 0);
  assert.match(own.stdout, /^usage: wxgw scan \[https:\/\/host\[:port\]\]/);
  const all = spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), '--help'], { encoding: 'utf8' });
  assert.match(all.stdout, /^ {2}scan +URL \| --policy FILE/m);
});

test('usage errors and unreachable targets exit 2 with one line on stderr', async () => {
  const cases: [string[], RegExp][] = [
    [[], /give a URL to scan, --policy FILE, or both/],
    [['ftp://example.com'], /only https:\/\//],
    [['not a url'], /not a URL/],
    [['https://127.0.0.1:1', '--burst', '1000'], /--burst 1000: expected a whole number from 1 to 100/],
    [['https://127.0.0.1:1', '--format', 'xml'], /--format xml/],
    [['https://127.0.0.1:1', '--bogus'], /Unknown option '--bogus'/],
    [['https://127.0.0.1:1', '--path', 'api'], /a path starts with \//],
    [['https://127.0.0.1:1', '--ca', '/nonexistent/root.pem'], /--ca \/nonexistent\/root\.pem: cannot read it/],
    [['https://127.0.0.1:1'], /could not scan: https:\/\/127\.0\.0\.1:1\/: ECONNREFUSED/],
  ];
  for (const [args, message] of cases) {
    const r = await runScan(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '', args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
  }
});
