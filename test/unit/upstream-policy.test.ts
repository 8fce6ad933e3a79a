// The upstream keys of the policy: targets, balance, health, limits and TLS, the values they
// become, and the errors a wrong one gets (file, line, key, and what is wrong). TLS files are
// real files made by the repo's chain generator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadUpstreamTls } from '../../gateway/tls/upstream-client.js';
import { PolicyError, type UpstreamTlsConfig } from '../../gateway/types/policy.js';
import { makeChain } from '../helpers/chain.js';
import { POLICY_FILE, ROOT, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

// Line 18 of BASE is `legacy`, line 19 `billing` (https://billing.internal:9443/v1).
const legacy = (entry: string): string => edit({ 18: `  legacy: ${entry}` });
const billing = (entry: string): string => edit({ 19: `  billing: ${entry}` });

test('targets, balance, health and limits become the typed config', async () => {
  const { config } = await accept(
    legacy(
      '{ targets: ["http://10.0.0.1:9000/v1/", "http://10.0.0.2:9000/v1"], balance: least_busy, connections: 4, connect_timeout: 1s, queue_timeout: 250ms, preserve_host: true, eject: { failures: 5, cooldown: 2s, max_cooldown: 2s }, health: { path: /ping?deep=1, interval: 3s } }',
    ),
  );
  const u = config.upstreams.get('legacy')!;
  assert.deepEqual(u.targets.map(String), ['http://10.0.0.1:9000/v1/', 'http://10.0.0.2:9000/v1']);
  assert.equal(u.url.href, 'http://10.0.0.1:9000/v1/');
  assert.equal(u.balance, 'least_busy');
  assert.equal(u.connections, 4);
  assert.equal(u.connect_timeout, 1000);
  assert.equal(u.queue_timeout, 250);
  assert.equal(u.preserve_host, true);
  assert.deepEqual(u.eject, { failures: 5, cooldown: 2000, max_cooldown: 2000 });
  assert.deepEqual(u.health, { path: '/ping?deep=1', interval: 3000, timeout: 2000, healthy: 2, unhealthy: 3 });
  assert.equal(u.tls, undefined);
});

test('the TLS keys of an https:// upstream resolve against the policy file and a single pin becomes a list', async () => {
  const pin = 'a'.repeat(43) + '=';
  const { config } = await accept(billing(`{ url: "https://billing.internal:9443/v1", ca: ../certs/ca.pem, pin: "${pin}", client_cert: ../certs/fullchain.pem, client_key: ../certs/privkey.pem, servername: Billing.Example.COM }`));
  const tls = config.upstreams.get('billing')!.tls!;
  assert.equal(tls.ca, join(ROOT, 'certs', 'ca.pem'));
  assert.deepEqual(tls.pin, [pin]);
  assert.equal(tls.client_cert, join(ROOT, 'certs', 'fullchain.pem'));
  assert.equal(tls.client_key, join(ROOT, 'certs', 'privkey.pem'));
  assert.equal(tls.servername, 'billing.example.com');
});

test('url and targets: exactly one, all alike', async () => {
  expectDiagnostics(await reject(legacy('{ url: "http://a:1", targets: ["http://b:1"] }')), [
    { line: 18, col: 41, path: 'upstreams.legacy.targets', message: ['either `url`', 'not both'] },
  ]);
  expectDiagnostics(await reject(legacy('{ timeout: 10s }')), [{ line: 18, col: 3, path: 'upstreams.legacy', message: ['needs `url`', '`targets`'] }]);
  expectDiagnostics(await reject(legacy('{ targets: ["http://a:1", "https://b:1", "http://c:1/v2", "http://a:1"] }')), [
    { line: 18, col: 37, path: 'upstreams.legacy.targets[1]', message: ['https://', 'first target is http://'] },
    { line: 18, col: 52, path: 'upstreams.legacy.targets[2]', message: ['base path `/v2`', 'first target has `/`'] },
    { line: 18, col: 69, path: 'upstreams.legacy.targets[3]', message: ['`http://a:1` is already target 0'] },
  ]);
  expectDiagnostics(await reject(legacy('{ targets: ["http://a:1", "ftp://b:1"] }')), [
    { line: 18, col: 37, path: 'upstreams.legacy.targets[1]', message: ['uses ftp://', 'expected an http:// or https:// URL'] },
  ]);
});

test('TLS keys on an http:// upstream, and a client certificate without its key, are errors', async () => {
  expectDiagnostics(await reject(legacy('{ url: "http://127.0.0.1:9000", ca: ../certs/ca.pem }')), [
    { line: 18, col: 47, path: 'upstreams.legacy.ca', message: ['`ca` applies only to https:// upstreams'] },
  ]);
  expectDiagnostics(await reject(billing('{ url: "https://billing.internal:9443", client_cert: ../certs/fullchain.pem }')), [
    { line: 19, col: 65, path: 'upstreams.billing.client_cert', message: ['needs `client_key`'] },
  ]);
  expectDiagnostics(await reject(billing('{ url: "https://billing.internal:9443", pin: [abc] }')), [
    { line: 19, col: 58, path: 'upstreams.billing.pin[0]', message: ['base64 SHA-256'] },
  ]);
});

test('a TLS file that cannot be read is named with the reason', async () => {
  expectDiagnostics(await reject(billing('{ url: "https://billing.internal:9443", ca: ../certs/missing-ca.pem }')), [
    { line: 19, col: 56, path: 'upstreams.billing.ca', message: [`cannot read upstream CA bundle ${join(ROOT, 'certs', 'missing-ca.pem')}`, 'no such file or directory (ENOENT)'] },
  ]);
});

test('timers that contradict each other are errors at the key to change', async () => {
  expectDiagnostics(await reject(legacy('{ url: "http://a:1", eject: { cooldown: 1m, max_cooldown: 10s } }')), [
    { line: 18, col: 69, path: 'upstreams.legacy.eject.max_cooldown', message: ['`10s` is shorter than cooldown `1m`', 'set them equal for a fixed cool-down'] },
  ]);
  expectDiagnostics(await reject(legacy('{ url: "http://a:1", health: { path: /h, interval: 1s, timeout: 1s } }')), [
    { line: 18, col: 75, path: 'upstreams.legacy.health.timeout', message: ['not shorter than interval'] },
  ]);
  expectDiagnostics(await reject(legacy('{ url: "http://a:1", connections: 0 }')), [{ line: 18, col: 45, path: 'upstreams.legacy.connections', message: ['must be >= 1'] }]);
});

// --- The files' contents, read when a snapshot is built ------------------------------------------

const pos = { file: POLICY_FILE, line: 19, col: 3, path: 'upstreams.billing' };
const tlsConfig = (over: Partial<UpstreamTlsConfig>): UpstreamTlsConfig => ({ pin: [], files: {}, pos, ...over });

function refusal(config: UpstreamTlsConfig): { path: string; message: string }[] {
  try {
    loadUpstreamTls(config);
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.diagnostics.map((d) => ({ path: d.path, message: d.message }));
  }
  assert.fail('the TLS files were accepted');
}

test('a CA file, client certificate and key that are not what their keys say are named with what they hold', async () => {
  const client = await makeChain({ cn: 'wxgw-gateway', problem: 'client-auth-only' });
  const server = await makeChain({ cn: 'not-a-client' });
  const empty = join(client.dir, 'empty.pem');
  writeFileSync(empty, '');

  assert.deepEqual(refusal(tlsConfig({ ca: client.key })), [{ path: 'upstreams.billing.ca', message: `${client.key}: holds PRIVATE KEY, not a certificate: expected -----BEGIN CERTIFICATE-----` }]);
  assert.deepEqual(refusal(tlsConfig({ ca: empty })), [{ path: 'upstreams.billing.ca', message: `${empty}: the CA bundle file is empty: expected PEM (-----BEGIN CERTIFICATE-----)` }]);
  const swapped = refusal(tlsConfig({ client_cert: client.key, client_key: client.cert }));
  assert.equal(swapped.length, 2);
  assert.match(swapped[0]!.message, /holds PRIVATE KEY, not a certificate.*are client_cert and client_key swapped\?/);
  assert.match(swapped[1]!.message, /holds a certificate, not a private key/);
  const serverOnly = refusal(tlsConfig({ client_cert: server.cert, client_key: server.key }));
  assert.equal(serverOnly.length, 1);
  assert.equal(serverOnly[0]!.path, 'upstreams.billing.client_cert');
  assert.match(serverOnly[0]!.message, /not for client authentication \(its extended key usage lacks clientAuth\)/);
});

test('a client key of another certificate is refused, the right one accepted', async () => {
  const client = await makeChain({ cn: 'wxgw-gateway', problem: 'client-auth-only' });
  const wrong = await makeChain({ cn: 'wxgw-gateway', problem: 'wrong-key' });
  const mismatch = refusal(tlsConfig({ client_cert: client.cert, client_key: wrong.key }));
  assert.deepEqual(mismatch.map((m) => m.path), ['upstreams.billing.client_key']);
  assert.match(mismatch[0]!.message, /this key does not belong to the certificate in/);
  const ok = loadUpstreamTls(tlsConfig({ ca: client.root, client_cert: client.cert, client_key: client.key, servername: 'backend.internal' }));
  assert.equal(ok.options.servername, 'backend.internal');
  assert.ok(typeof ok.options.cert === 'string' && ok.options.cert.includes('BEGIN CERTIFICATE'));
  // Same files, same fingerprint; other contents, another.
  assert.equal(loadUpstreamTls(tlsConfig({ ca: client.root, client_cert: client.cert, client_key: client.key, servername: 'backend.internal' })).fingerprint, ok.fingerprint);
  assert.notEqual(loadUpstreamTls(tlsConfig({ ca: wrong.root, client_cert: client.cert, client_key: client.key, servername: 'backend.internal' })).fingerprint, ok.fingerprint);
});
