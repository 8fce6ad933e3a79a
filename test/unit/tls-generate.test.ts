import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import forge from 'node-forge';
import { ensureDevChain } from '../../gateway/tls/devchain.js';
import { encryptKey, issueIntermediate, issueLeaf, issueRoot } from '../../gateway/tls/generate.js';
import { loadCertificates } from '../../gateway/tls/load.js';
import { tlsConfig } from '../helpers/chain.js';

const DAY = 86_400_000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const x509 = (pem: string): X509Certificate => new X509Certificate(pem);
const spki = (key: string | KeyObject): Buffer => createPublicKey(key).export({ type: 'spki', format: 'der' });
const extension = (pem: string, name: string): Record<string, unknown> =>
  forge.pki.certificateFromPem(pem).getExtension(name) as Record<string, unknown>;

const root = issueRoot({ cn: 'Gen Root' });
const int = issueIntermediate(root, { cn: 'Gen Intermediate' });

test('a root is a self-signed CA that may sign certificates and CRLs', () => {
  const cert = x509(root.cert);
  assert.equal(cert.subject, 'CN=Gen Root');
  assert.equal(cert.issuer, 'CN=Gen Root');
  assert.equal(cert.ca, true);
  assert.ok(cert.checkIssued(cert) && cert.verify(cert.publicKey));
  assert.deepEqual(spki(root.key), cert.publicKey.export({ type: 'spki', format: 'der' }));
  assert.equal(extension(root.cert, 'keyUsage')['keyCertSign'], true);
  assert.equal(extension(root.cert, 'keyUsage')['cRLSign'], true);
});

test('an intermediate is a CA issued by the root, its AKI pointing at the root key', () => {
  const cert = x509(int.cert);
  assert.equal(cert.ca, true);
  assert.equal(cert.issuer, 'CN=Gen Root');
  assert.ok(cert.checkIssued(x509(root.cert)) && cert.verify(x509(root.cert).publicKey));
  assert.ok(extension(int.cert, 'subjectKeyIdentifier'));
  assert.ok(extension(int.cert, 'authorityKeyIdentifier'));
  // Same name, other key: the AKI tells them apart before any signature check.
  const impostor = issueRoot({ cn: 'Gen Root' });
  assert.equal(cert.checkIssued(x509(impostor.cert)), false);
});

test('a leaf carries serverAuth, DNS and IP names, and the requested validity', () => {
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - DAY);
  const notAfter = new Date(notBefore.getTime() + 10 * DAY);
  const leaf = issueLeaf(int, {
    cn: 'api.example.test',
    dns: ['api.example.test', '*.example.test'],
    ips: ['127.0.0.1', '::1'],
    notBefore,
    notAfter,
  });
  const cert = x509(leaf.cert);
  assert.equal(cert.ca, false);
  assert.equal(cert.subject, 'CN=api.example.test');
  assert.equal(cert.subjectAltName, 'DNS:api.example.test, DNS:*.example.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  assert.deepEqual(cert.keyUsage, [SERVER_AUTH]);
  assert.equal(new Date(cert.validFrom).getTime(), notBefore.getTime());
  assert.equal(new Date(cert.validTo).getTime(), notAfter.getTime());
  assert.ok(cert.checkIssued(x509(int.cert)) && cert.verify(x509(int.cert).publicKey));
  assert.deepEqual(spki(leaf.key), cert.publicKey.export({ type: 'spki', format: 'der' }));
  const usage = extension(leaf.cert, 'keyUsage');
  assert.equal(usage['digitalSignature'], true);
  assert.equal(usage['keyEncipherment'], true);
  assert.notEqual(usage['keyCertSign'], true);
});

test('a leaf can be self-signed, certify a given key, and omit EKU', () => {
  const selfSigned = issueLeaf(null, { cn: 'solo.example.test' });
  const cert = x509(selfSigned.cert);
  assert.equal(cert.issuer, cert.subject);
  assert.ok(cert.verify(cert.publicKey));
  assert.equal(cert.subjectAltName, 'DNS:solo.example.test');

  const renewed = issueLeaf(int, { cn: 'solo.example.test', key: selfSigned.key, extendedKeyUsage: [] });
  assert.equal(renewed.key, selfSigned.key);
  assert.deepEqual(x509(renewed.cert).publicKey.export({ type: 'spki', format: 'der' }), spki(selfSigned.key));
  assert.equal(x509(renewed.cert).keyUsage, undefined);
});

test('encryptKey produces a key that opens only with its passphrase', () => {
  const encrypted = encryptKey(int.key, 'pass phrase');
  assert.match(encrypted, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  assert.throws(() => createPrivateKey(encrypted));
  assert.deepEqual(spki(createPrivateKey({ key: encrypted, passphrase: 'pass phrase' })), spki(int.key));
});

test('ensureDevChain creates a complete localhost chain, then reuses it until it expires', async (t) => {
  const dir = path.join(tmpdir(), `wxgw-devchain-${process.pid}`);
  t.after(() => rm(dir, { recursive: true, force: true }));

  const first = await ensureDevChain(path.relative(process.cwd(), dir));
  assert.equal(first.created, true);
  assert.deepEqual(
    { root: first.root, fullchain: first.fullchain, key: first.key },
    { root: path.join(dir, 'root.pem'), fullchain: path.join(dir, 'fullchain.pem'), key: path.join(dir, 'privkey.pem') },
  );
  assert.equal(statSync(first.key).mode & 0o777, 0o600);
  const tls = tlsConfig([{ cert: first.fullchain, key: first.key }], { roots: { bundle: first.root } });
  const { certificates, diagnostics } = loadCertificates(tls);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(certificates[0]!.names, ['localhost', '127.0.0.1', '::1']);
  assert.deepEqual(
    certificates[0]!.chain.map((c) => c.subject),
    ['CN=localhost', 'CN=wxgw development intermediate CA'],
  );

  const pem = readFileSync(first.fullchain, 'utf8');
  const again = await ensureDevChain(dir);
  assert.equal(again.created, false);
  assert.equal(readFileSync(again.fullchain, 'utf8'), pem);

  // A key that no longer fits the chain (say, an interrupted regeneration): a fresh chain.
  writeFileSync(first.key, issueRoot({ cn: 'unrelated' }).key);
  chmodSync(first.key, 0o644);
  const rekeyed = await ensureDevChain(dir);
  assert.equal(rekeyed.created, true);
  assert.deepEqual(loadCertificates(tls).diagnostics, []);
  assert.equal(statSync(first.key).mode & 0o777, 0o600);
  const current = readFileSync(rekeyed.fullchain, 'utf8');

  // Two years on the leaf has expired: a fresh chain replaces it.
  const later = new Date(Date.now() + 2 * 365 * DAY);
  const renewed = await ensureDevChain(dir, later);
  assert.equal(renewed.created, true);
  assert.notEqual(readFileSync(renewed.fullchain, 'utf8'), current);
  assert.deepEqual(loadCertificates(tls, { now: later }).diagnostics, []);
});
