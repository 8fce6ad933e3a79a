// README's first command, `npm start`, as a fresh clone runs it: the demo binary with the chain it
// generates in certs/, exercised the way README shows, on ports given through WXGW_DEMO_* (the
// documented 8443, 8080, 9901 and 9000 may be taken on the machine running the tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { httpsRequest } from '../helpers/https-client.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/wait.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Demo {
  child: ChildProcessByStdio<null, Readable, Readable>;
  output(): string;
  /** The ports it was given. */
  asked: { https: number; http: number; admin: number };
}

/** Starts the demo; resolves once it printed its `try:` lines, or undefined when a port was taken. */
async function startDemo(): Promise<Demo | undefined> {
  const asked = { https: await freePort(), http: await freePort(), admin: await freePort() };
  const env = {
    ...process.env,
    WXGW_DEMO_HTTPS_PORT: String(asked.https),
    WXGW_DEMO_HTTP_PORT: String(asked.http),
    WXGW_DEMO_ADMIN_PORT: String(asked.admin),
    WXGW_DEMO_BACKEND_PORT: '0',
  };
  const child = spawn(process.execPath, [join(root, 'bin/wxgw.js'), 'demo'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const wake = new Set<() => void>();
  const gather = (c: Buffer): void => {
    out += c.toString();
    for (const w of wake) w();
  };
  child.stdout.on('data', gather);
  child.stderr.on('data', gather);
  child.once('exit', () => {
    for (const w of wake) w();
  });
  const state = await waitUntil(
    () => (out.includes('try:') ? 'up' : child.exitCode !== null ? 'exited' : undefined),
    'the demo to print its addresses',
    { wake, timeoutMs: 30_000, describe: () => out },
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  if (state === 'up') return { child, output: () => out, asked };
  if (/EADDRINUSE|already in use/.test(out)) return undefined;
  assert.fail(`the demo exited before it started:\n${out}`);
}

function printedPort(out: string, line: RegExp): number {
  const port = line.exec(out)?.[1];
  assert.ok(port, `no ${line} in the demo's output:\n${out}`);
  return Number(port);
}

test('the demo serves the sample backend over HTTPS with a chain that verifies to the printed root', async () => {
  let demo: Demo | undefined;
  // A port chosen for it can be taken before the demo binds it (helpers/ports.ts): start again.
  for (let attempt = 0; demo === undefined; attempt++) {
    assert.ok(attempt < 3, 'the demo found its ports taken three times');
    demo = await startDemo();
  }
  const { child } = demo;
  try {
    const out = demo.output();
    const rootPath = /root CA to trust +(\S+)/.exec(out)?.[1];
    assert.ok(rootPath, out);
    assert.equal(rootPath, join(root, 'certs/root.pem'));
    const ca = readFileSync(rootPath);
    const https = printedPort(out, /wxgw HTTPS +https:\/\/localhost:(\d+)/);
    const http = printedPort(out, /wxgw plain HTTP +http:\/\/localhost:(\d+)/);
    const admin = printedPort(out, /wxgw admin +http:\/\/127\.0\.0\.1:(\d+)\/healthz/);
    const backend = printedPort(out, /sample legacy backend +http:\/\/127\.0\.0\.1:(\d+)/);
    assert.deepEqual({ https, http, admin }, demo.asked);
    assert.notEqual(backend, 0, 'the backend asked for any free port and the demo printed the one it got');
    assert.match(out, new RegExp(`curl --cacert \\S+ https://localhost:${https}/api/user`));

    const user = await httpsRequest(https, ca, { path: '/api/user' });
    assert.equal(user.status, 200);
    assert.equal(user.json<{ data: { openid: string } }>().data.openid, 'oAbC1234567890demo0000000001');

    const slow = await httpsRequest(https, ca, { path: '/api/slow?ms=3000' });
    assert.equal(slow.status, 504);
    assert.equal(slow.json<{ error: { reason: string } }>().error.reason, 'upstream_timeout');

    const login = await httpsRequest(https, ca, { method: 'POST', path: '/wx/login', body: '{"code":"any-code"}' });
    assert.equal(login.status, 200, login.text);
    const me = await httpsRequest(https, ca, { path: '/api/me', headers: { authorization: `Bearer ${login.json<{ token: string }>().token}` } });
    assert.equal(me.status, 200, me.text);

    const redirect = await new Promise<{ status?: number; location?: string }>((resolve, reject) => {
      request({ host: '127.0.0.1', port: http, path: '/api/user', headers: { host: `localhost:${http}` } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode, location: res.headers.location });
      })
        .on('error', reject)
        .end();
    });
    assert.deepEqual(redirect, { status: 308, location: `https://localhost:${https}/api/user` });

    const ready = await fetch(`http://127.0.0.1:${admin}/readyz`);
    assert.equal(ready.status, 200);

    child.kill('SIGTERM');
    const code = child.exitCode ?? (await new Promise<number | null>((resolve) => child.once('exit', resolve)));
    assert.equal(code, 0, demo.output());
  } finally {
    child.kill('SIGKILL');
  }
});
