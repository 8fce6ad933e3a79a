// A real https server built from loadCertificates + the gateway's TLS server options, and real clients that
// trust only the generated root: the chain must arrive complete for the handshake to verify.
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import type { TlsConfig } from '../../gateway/types/policy.js';
import { loadCertificates } from '../../gateway/tls/load.js';
import { handshakeTls, liveTlsServerOptions } from '../../gateway/tls/server-options.js';
import { makeChain, tlsConfig, type TestChain } from '../helpers/chain.js';

let chain: TestChain;
const servers: Server[] = [];

before(async () => {
  chain = await makeChain({ cn: 'api.example.test', ips: ['127.0.0.1'] });
});
after(async () => {
  for (const s of servers) s.close();
  await rm(chain.dir, { recursive: true, force: true });
});

async function serve(config: TlsConfig): Promise<{ port: number; clientErrors: Error[] }> {
  const { certificates, diagnostics } = loadCertificates(config);
  assert.deepEqual(diagnostics, []);
  const handshake = handshakeTls(config, certificates);
  const server = https.createServer(liveTlsServerOptions(() => handshake), (_req, res) => res.end('served'));
  const clientErrors: Error[] = [];
  server.on('tlsClientError', (err) => clientErrors.push(err));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, clientErrors };
}

interface Handshake {
  protocol: string | null;
  cipher: string;
  subject: string;
  issuer: string;
}

/** Connects trusting only the test root, with full verification (hostname included). */
function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: [chain.rootPem], rejectUnauthorized: true, ...opts });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(true);
      resolve({
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        subject: String(peer.subject.CN),
        issuer: String(peer.issuerCertificate.subject.CN),
      });
      socket.end();
    });
    socket.once('error', reject);
  });
}

test('certificates chosen by SNI, each served with its chain, TLS 1.3 negotiated', async () => {
  const second = await chain.addLeaf({ file: 'second', cn: 'second.example.test' });
  const wildcard = await chain.addLeaf({ file: 'wild', cn: 'wild', dns: ['*.apps.example.test'] });
  const { port } = await serve(tlsConfig([chain, second, wildcard], { roots: { bundle: chain.root } }));

  const api = await handshake(port, { servername: 'api.example.test' });
  assert.deepEqual(api, {
    protocol: 'TLSv1.3',
    cipher: api.cipher,
    subject: 'api.example.test',
    issuer: 'Test Intermediate CA',
  });
  assert.match(api.cipher, /^TLS_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+$/);

  assert.equal((await handshake(port, { servername: 'second.example.test' })).subject, 'second.example.test');
  assert.equal((await handshake(port, { servername: 'one.apps.example.test' })).subject, 'wild');

  // Unknown names get the default; the client's own hostname check would then fail, so it is
  // skipped here to see which certificate came (the chain is still verified).
  const unknown = await handshake(port, { servername: 'unknown.example.test', checkServerIdentity: () => undefined });
  assert.equal(unknown.subject, 'api.example.test');
  // No SNI at all (an IP address): the default certificate, which also covers 127.0.0.1.
  assert.equal((await handshake(port)).subject, 'api.example.test');
});

test('an https request through the same options is answered', async () => {
  const { port } = await serve(tlsConfig([chain], { roots: { bundle: chain.root } }));
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/', servername: 'api.example.test', ca: [chain.rootPem] }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  assert.equal(body, 'served');
});

test('TLS 1.2 clients get an ECDHE AEAD suite; TLS 1.1 clients are refused', async () => {
  const { port, clientErrors } = await serve(tlsConfig([chain], { roots: { bundle: chain.root } }));
  const v12 = await handshake(port, { servername: 'api.example.test', maxVersion: 'TLSv1.2' });
  assert.equal(v12.protocol, 'TLSv1.2');
  assert.match(v12.cipher, /^ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/);

  // The client's own security level would refuse TLS 1.1 before the server could; lower it so
  // that the refusal seen is the server's.
  await assert.rejects(
    handshake(port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
    { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' },
  );
  assert.equal(clientErrors.length, 1);
  assert.match(clientErrors[0]!.message, /unsupported protocol/);
});

test('min_version TLSv1.3 refuses TLS 1.2 clients', async () => {
  const { port } = await serve(tlsConfig([chain], { min_version: 'TLSv1.3', roots: { bundle: chain.root } }));
  await assert.rejects(handshake(port, { maxVersion: 'TLSv1.2' }), { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  assert.equal((await handshake(port)).protocol, 'TLSv1.3');
});

test('a leaf-only file is rejected at load, the failure clients would otherwise see', async () => {
  const leafOnly = await makeChain({ problem: 'leaf-only', ips: ['127.0.0.1'] });
  try {
    const config = tlsConfig([leafOnly], { roots: { bundle: leafOnly.root } });
    const { certificates, diagnostics } = loadCertificates(config);
    assert.equal(certificates.length, 0);
    assert.equal(diagnostics.length, 1);
    assert.match(diagnostics[0]!.message, /chain incomplete/);

    // What serving it anyway looks like to a client that trusts the very same root.
    const server = tls.createServer({ cert: await readFile(leafOnly.cert), key: await readFile(leafOnly.key) });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: [leafOnly.rootPem], rejectUnauthorized: true }, () => resolve(s.end()));
        s.once('error', reject);
      }),
      { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    );
  } finally {
    await rm(leafOnly.dir, { recursive: true, force: true });
  }
});
