// The command line as ops run it: the built `wxgw` binary as a child process, its output and its
// exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { policyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin/wxgw.js');

/** The example policy's secrets, as ops would export them. */
const EXAMPLE_ENV = {
  WX_APP_SECRET: 'example-app-secret',
  WX_TOKEN: 'exampleToken123',
  WX_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  SESSION_SIGNING_KEY: 'example-session-signing-key-of-32-bytes!',
};

function wxgw(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env, ...EXAMPLE_ENV };
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: root, timeout: 30_000, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('validate accepts the example policy with the development chain beside it', async () => {
  const ctx = await policyContext();
  mkdirSync(join(ctx.dir, 'config'));
  mkdirSync(join(ctx.dir, 'certs'));
  copyFileSync(join(root, 'config/gateway.example.yaml'), join(ctx.dir, 'config/gateway.yaml'));
  copyFileSync(ctx.chain.root, join(ctx.dir, 'certs/root.pem'));
  copyFileSync(ctx.chain.fullchain, join(ctx.dir, 'certs/fullchain.pem'));
  copyFileSync(ctx.chain.key, join(ctx.dir, 'certs/privkey.pem'));
  const r = wxgw('validate', '--config', join(ctx.dir, 'config/gateway.yaml'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /policy OK: 5 route\(s\), 1 upstream\(s\), 1 certificate chain\(s\) verified/);
});

test('validate reports every error with file, line and key, and exits 1', async () => {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'broken.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9", timeout: 60 seconds }
routes:
  - name: api
    match: { pathprefix: /api/ }
    upstream: legacy
  - name: api
    match: { path: /x }
    upstream: legasy
defaults: { allow: any }
`,
  );
  const r = wxgw('validate', '--config', file);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /broken\.yaml:9:\d+ +upstreams\.legacy\.timeout +.*60 seconds/);
  assert.match(r.stderr, /broken\.yaml:12:\d+ +routes\[0\]\.match\.pathprefix +.*did you mean `path_prefix`/);
  assert.match(r.stderr, /broken\.yaml:14:\d+ +routes\[1\]\.name +.*duplicate/i);
  assert.match(r.stderr, /broken\.yaml:16:\d+ +routes\[1\]\.upstream +.*legasy.*legacy/);
});

test('validate builds the guards too: a key set no algorithm fits is an error at its section', async () => {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'jwks.yaml');
  writeFileSync(join(ctx.dir, 'keys.json'), JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA' }] }));
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
identity:
  jwt: { jwks: keys.json }
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
defaults: { allow: any }
`,
  );
  const r = wxgw('validate', '--config', file);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /jwks\.yaml:8:1 +identity +identity\.jwt: no signing algorithm fits the configured key/);
});

test('validate names a certificate file that only holds the leaf', async () => {
  const ctx = await policyContext();
  const leafOnly = join(ctx.dir, 'leaf.pem');
  const pem = readFileSync(ctx.chain.fullchain, 'utf8');
  writeFileSync(leafOnly, pem.slice(0, pem.indexOf('-----END CERTIFICATE-----') + 26));
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
tls:
  roots: ${ctx.chain.root}
  certificates:
    - { cert: leaf.pem, key: ${ctx.chain.key} }
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: / }, upstream: legacy }
defaults: { allow: any }
`,
  );
  const r = wxgw('validate', '--config', file);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /gateway\.yaml:7:\d+ +tls\.certificates\[0\]\.cert +.*leaf\.pem: chain incomplete/);
  const started = wxgw('start', '--config', file);
  assert.equal(started.status, 1, 'start refuses the same policy before opening any port');
  assert.match(started.stderr, /chain incomplete/);
});

test('certs prints the chain as served and whether it verifies', async () => {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: / }, upstream: legacy }
defaults: { allow: any }
`,
  );
  const r = wxgw('certs', '--config', file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /localhost/);
  assert.match(r.stdout, /wxgw development intermediate CA|intermediate/i);
  assert.match(r.stdout, /days left|days/i);
  assert.match(r.stdout, /verifies|trusted/i);
});

test('start serves the policy and exits 0 on SIGTERM', async () => {
  const ctx = await policyContext();
  const upstream = await startUpstream();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }
defaults: { allow: any }
`,
  );
  const child = spawn(process.execPath, [bin, 'start', '--config', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  try {
    const started = await waitUntil(() => (out.includes('wxgw listening') ? 'listening' : child.exitCode !== null ? 'exited' : undefined), 'the gateway to start', {
      describe: () => out,
    });
    assert.equal(started, 'listening', `gateway exited:\n${out}`);
    const res = await httpsRequest(ctx.httpsPort, readFileSync(ctx.chain.root), { path: '/api/ping' });
    assert.equal(res.status, 200);
    const health = await fetch(`http://127.0.0.1:${ctx.adminPort}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`http://127.0.0.1:${ctx.adminPort}/readyz`);
    assert.deepEqual(await ready.json(), { status: 'ready', failing: [] });
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, out);
  } finally {
    child.kill('SIGKILL');
    await upstream.close();
  }
});

test('start names the policy line of a listener whose port is taken, and starts nothing', async () => {
  const ctx = await policyContext();
  const taken = await startUpstream();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${taken.port}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: / }, upstream: legacy }
defaults: { allow: any }
`,
  );
  try {
    const r = wxgw('start', '--config', file);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken.port} \\(server\\.https\\.listen at .*gateway\\.yaml:3:\\d+\\): the address is already in use`));
  } finally {
    await taken.close();
  }
});

test('an unknown command prints usage and exits 2', () => {
  const r = wxgw('serve');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "serve"/);
  assert.match(r.stderr, /validate/);
});
