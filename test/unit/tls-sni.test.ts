import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type { SecureContext } from 'node:tls';
import { issueLeaf } from '../../gateway/tls/generate.js';
import { loadCertificates, type LoadedCertificate } from '../../gateway/tls/load.js';
import { certificateNames } from '../../gateway/tls/names.js';
import { CIPHERS } from '../../gateway/tls/protocol.js';
import { handshakeTls, liveTlsServerOptions } from '../../gateway/tls/server-options.js';
import { SniSelector } from '../../gateway/tls/sni.js';
import { makeChain, tlsConfig, type TestChain } from '../helpers/chain.js';

let chain: TestChain;
let api: LoadedCertificate;
let images: LoadedCertificate;
let other: LoadedCertificate;
let selector: SniSelector;

before(async () => {
  chain = await makeChain({ cn: 'api.example.test' });
  const wildcard = await chain.addLeaf({ file: 'images', cn: 'images', dns: ['*.img.example.test'] });
  // Also claims api.example.test: the earlier entry keeps it.
  const second = await chain.addLeaf({ file: 'other', cn: 'other.example.test', dns: ['other.example.test', 'api.example.test'] });
  const tls = tlsConfig([chain, wildcard, second], { roots: { bundle: chain.root } });
  const { certificates, diagnostics } = loadCertificates(tls);
  assert.deepEqual(diagnostics, []);
  [api, images, other] = certificates as [LoadedCertificate, LoadedCertificate, LoadedCertificate];
  selector = new SniSelector(certificates);
});
after(() => rm(chain.dir, { recursive: true, force: true }));

const cases: Array<[string, () => LoadedCertificate, string]> = [
  ['api.example.test', () => api, 'exact name'],
  ['API.Example.TEST.', () => api, 'case and a trailing dot do not matter'],
  ['other.example.test', () => other, 'exact name of the second entry'],
  ['x.img.example.test', () => images, 'wildcard covers one label'],
  ['a.b.img.example.test', () => api, 'wildcard does not cover two labels: default'],
  ['img.example.test', () => api, 'wildcard does not cover its parent: default'],
  ['unknown.example.org', () => api, 'unknown name: default'],
];

for (const [servername, expected, why] of cases) {
  test(`SNI ${servername}: ${why}`, () => {
    assert.equal(selector.select(servername), expected().secureContext);
  });
}

test('the callback hands the selected context to the TLS layer', () => {
  let got: SecureContext | undefined;
  selector.callback('x.img.example.test', (err, ctx) => {
    assert.equal(err, null);
    got = ctx;
  });
  assert.equal(got, images.secureContext);
});

test('names: DNS lower-case (quoted values unquoted), then IPs with IPv6 compressed', () => {
  const cert = new X509Certificate(
    issueLeaf(null, { cn: 'n', dns: ['A.Example.test', 'we,ird.example.test'], ips: ['10.0.0.1', '2001:db8::1'] }).cert,
  );
  assert.deepEqual(certificateNames(cert), ['a.example.test', 'we,ird.example.test', '10.0.0.1', '2001:db8::1']);
});

test('a selector needs at least one certificate', () => {
  assert.throws(() => new SniSelector([]), /at least one certificate/);
});

test('server options: policy floor, AEAD-only TLS 1.2 suites, first certificate as default', () => {
  const tls = tlsConfig([chain], { min_version: 'TLSv1.3', roots: { bundle: chain.root } });
  const handshake = handshakeTls(tls, [api, images]);
  const options = liveTlsServerOptions(() => handshake);
  assert.equal(options.minVersion, 'TLSv1.3');
  assert.equal(options.maxVersion, 'TLSv1.3');
  assert.equal(options.honorCipherOrder, true);
  let chosen: SecureContext | undefined;
  options.SNICallback!('x.img.example.test', (_err, ctx) => (chosen = ctx));
  assert.equal(chosen, images.secureContext, 'SNI selects through the handshake table in force');
  assert.equal(options.cert, api.contextOptions.cert);
  assert.equal(options.key, api.contextOptions.key);
  for (const suite of CIPHERS.split(':')) {
    assert.match(suite, /^(TLS_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+|ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305))$/);
  }
  const plain = handshakeTls(tlsConfig([chain]), [api]);
  assert.equal(liveTlsServerOptions(() => plain).minVersion, 'TLSv1.2');
  assert.throws(() => handshakeTls(tls, []), /at least one/);
});
