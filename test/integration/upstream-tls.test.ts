// https:// upstreams through the real gateway: a backend with a private CA that requires a client
// certificate is reached with the right CA, servername, pin and client certificate; a wrong CA, a
// wrong pin or no client certificate is 502 upstream_tls_failed with a log line that says why.
// Chains come from the repo's own generator (test/helpers/chain.ts on gateway/tls/generate.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { makeChain, type TestChain } from '../helpers/chain.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { spkiPin } from '../../gateway/tls/upstream-client.js';

let t: TestGateway;
let backend: Server;
let server: TestChain;
let client: TestChain;
let other: TestChain;
/** The client certificate subject each request to the backend came with. */
const clients: string[] = [];

before(async () => {
  server = await makeChain({ cn: 'backend.internal' });
  client = await makeChain({ cn: 'wxgw-gateway', problem: 'client-auth-only' });
  other = await makeChain({ problem: 'untrusted-root' });
  backend = createServer(
    { cert: readFileSync(server.cert), key: readFileSync(server.key), ca: readFileSync(client.root), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      clients.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ host: req.headers.host }));
    },
  );
  backend.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const leaf = new X509Certificate(readFileSync(server.cert));
  const wrongPin = createHash('sha256').update('some other key').digest('base64');
  const mtls = `client_cert: ${client.cert}, client_key: ${client.key}`;
  t = await startTestGateway(
    (ctx) => {
      // Relative to the policy file, as operators write them.
      writeFileSync(join(ctx.dir, 'backend-ca.pem'), readFileSync(server.root));
      writeFileSync(join(ctx.dir, 'reloaded-ca.pem'), readFileSync(other.root));
      return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  good: { url: "${url}", ca: backend-ca.pem, servername: backend.internal, pin: "${spkiPin(leaf)}", ${mtls} }
  wrong-ca: { url: "${url}", ca: ${other.root}, servername: backend.internal, ${mtls} }
  wrong-pin: { url: "${url}", ca: backend-ca.pem, servername: backend.internal, pin: ["${wrongPin}"], ${mtls} }
  no-cert: { url: "${url}", ca: backend-ca.pem, servername: backend.internal }
  wrong-name: { url: "${url}", ca: backend-ca.pem, ${mtls} }
  reloaded: { url: "${url}", ca: reloaded-ca.pem, servername: backend.internal, ${mtls} }
routes:
  - { name: good, match: { path_prefix: /good/ }, upstream: good }
  - { name: wrong-ca, match: { path_prefix: /wrong-ca/ }, upstream: wrong-ca }
  - { name: wrong-pin, match: { path_prefix: /wrong-pin/ }, upstream: wrong-pin }
  - { name: no-cert, match: { path_prefix: /no-cert/ }, upstream: no-cert }
  - { name: wrong-name, match: { path_prefix: /wrong-name/ }, upstream: wrong-name }
  - { name: reloaded, match: { path_prefix: /reloaded/ }, upstream: reloaded }
defaults: { allow: any }
`;
    },
  );
});

after(async () => {
  await t.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

test('the right CA, servername, pin and client certificate reach the backend', async () => {
  const res = await httpsRequest(t.port, t.ca, { path: '/good/x' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(clients, ['wxgw-gateway']);
});

async function refused(route: string, why: RegExp): Promise<void> {
  const res = await httpsRequest(t.port, t.ca, { path: `/${route}/x` });
  assert.equal(res.status, 502, res.text);
  const id = res.json<{ error: { reason: string; request_id: string } }>().error;
  assert.equal(id.reason, 'upstream_tls_failed');
  const line = await t.waitForLog((l) => l.request_id === id.request_id && l.msg === 'upstream request failed', `the log line of ${route}`);
  assert.equal(line.route, route);
  assert.match(String((line.err as { message?: string } | undefined)?.message), why);
}

test('a backend certificate the CA file does not vouch for is refused, and the log says so', async () => {
  await refused('wrong-ca', /issuer certificate|unable to verify/i);
});

test('a backend certificate matching no pin is refused, and the log names its key', async () => {
  await refused('wrong-pin', new RegExp(`matches none of the pins; its public key is sha256 ${spkiPin(new X509Certificate(readFileSync(server.cert))).replace(/[+/]/g, '\\$&')}`));
});

test('without the client certificate the backend refuses the gateway, and the log says so', async () => {
  await refused('no-cert', /certificate/i);
});

test('without servername the backend is checked for the address it is reached at, and refused', async () => {
  await refused('wrong-name', /IP: 127\.0\.0\.1 is not in the cert's list/);
  // None of the refused attempts reached the backend's handler.
  assert.deepEqual(clients, ['wxgw-gateway']);
});

test('a reload reads the upstream TLS files again; one that went bad keeps the previous policy', async () => {
  const ca = join(t.ctx.dir, 'reloaded-ca.pem');
  await refused('reloaded', /issuer certificate|unable to verify/i);
  writeFileSync(ca, readFileSync(server.root));
  assert.equal((await t.gw.reload()).ok, true);
  assert.equal((await httpsRequest(t.port, t.ca, { path: '/reloaded/x' })).status, 200);
  writeFileSync(ca, readFileSync(client.key));
  const result = await t.gw.reload();
  assert.equal(result.ok, false);
  assert.ok(!result.ok && result.diagnostics.some((d) => d.path === 'upstreams.reloaded.ca' && d.message === `${ca}: holds PRIVATE KEY, not a certificate: expected -----BEGIN CERTIFICATE-----`), JSON.stringify(result));
  assert.equal((await httpsRequest(t.port, t.ca, { path: '/reloaded/x' })).status, 200);
});
