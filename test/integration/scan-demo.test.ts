// README's "before and after": `npm start`'s demo on free ports, its bare sample backend scanned,
// then the demo gateway in front of it. The two reports must say what README shows: the backend
// fails all five patterns; behind wxgw none, the demo's one-day HSTS on localhost a note.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';
import { repoRoot } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';
import { runScan, type JsonReport } from '../helpers/scan-targets.js';

function failing(report: JsonReport): string[] {
  return [...new Set(report.findings.filter((f) => f.level === 'error' || f.level === 'warning').map((f) => f.rule))].sort();
}

test('the demo: the bare sample backend fails all five patterns; behind wxgw none', async () => {
  const ports = { https: await freePort(), http: await freePort(), admin: await freePort() };
  const child = spawn(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'demo'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      WXGW_DEMO_HTTPS_PORT: String(ports.https),
      WXGW_DEMO_HTTP_PORT: String(ports.http),
      WXGW_DEMO_ADMIN_PORT: String(ports.admin),
      WXGW_DEMO_BACKEND_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const wake = new Set<() => void>();
  for (const s of [child.stdout, child.stderr]) {
    s.on('data', (c: Buffer) => {
      out += c.toString();
      for (const w of wake) w();
    });
  }
  try {
    await waitUntil(() => (out.includes('try:') || child.exitCode !== null ? true : undefined), 'the demo to start', { wake, timeoutMs: 30_000, describe: () => out });
    assert.ok(out.includes('try:'), `the demo did not start:\n${out}`);
    const backend = /sample legacy backend +(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    assert.ok(backend, out);

    const before = await runScan([backend, '--path', '/api/user', '--callback', '/wx/callback', '--rate', '100', '--format', 'json']);
    assert.equal(before.status, 1, before.stderr);
    const bare = JSON.parse(before.stdout) as JsonReport;
    assert.deepEqual(failing(bare), ['WX1-CHAIN', 'WX2-NO-TLS', 'WX3-CORS-CREDENTIALS', 'WX4-SENSITIVE-DATA', 'WX5-CALLBACK-UNVERIFIED', 'WX5-NO-RATE-LIMIT'], before.stdout);

    const after = await runScan([
      `https://localhost:${ports.https}`,
      '--path', '/api/user',
      '--callback', '/wx/callback',
      '--ca', join(repoRoot, 'certs/root.pem'),
      '--http-port', String(ports.http),
      '--rate', '100',
      '--format', 'json',
    ]);
    const gateway = JSON.parse(after.stdout) as JsonReport;
    assert.deepEqual(failing(gateway), [], after.stdout);
    assert.ok(gateway.findings.some((f) => f.rule === 'WX2-HSTS' && f.level === 'note' && /86400 s/.test(f.message)), after.stdout);
    assert.equal(after.status, 0, after.stdout);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
});
