import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { describeCertificates } from '../../gateway/tls/describe.js';
import { makeChain, tlsConfig, type TestChain } from '../helpers/chain.js';

const chains: TestChain[] = [];
after(() => Promise.all(chains.map((c) => rm(c.dir, { recursive: true, force: true }))));

test('a good entry: every certificate as served and the root it verifies to', async () => {
  const c = await makeChain({ cn: 'api.example.test', ips: ['127.0.0.1'] });
  chains.push(c);
  const { text, ok } = describeCertificates(tlsConfig([c], { roots: { bundle: c.root } }));
  assert.equal(ok, true);
  const lines = text.split('\n');
  assert.equal(lines[0], `trust: the CA bundle ${c.root} (1 root)`);
  assert.ok(lines.includes('tls.certificates[0]: ok'), text);
  assert.ok(lines.includes(`  cert  ${c.cert}`), text);
  assert.ok(lines.includes('  #1 leaf: CN=api.example.test'), text);
  assert.ok(lines.includes('      issuer   CN=Test Intermediate CA'), text);
  assert.ok(lines.includes('      names    api.example.test, 127.0.0.1'), text);
  assert.ok(lines.includes('      CA       no'), text);
  assert.ok(lines.includes('  #2 intermediate: CN=Test Intermediate CA'), text);
  assert.ok(lines.includes('      CA       yes'), text);
  assert.match(text, /valid {4}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \.\. \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(364 days left\)/);
  assert.match(text, new RegExp(`  verifies to the trusted root "CN=Test Root CA" \\(valid until .*\\) from the CA bundle ${c.root}`));
  assert.doesNotMatch(text, /error|warning/);
});

test('broken entries show what could be parsed, and every finding', async () => {
  const leafOnly = await makeChain({ problem: 'leaf-only' });
  const expired = await makeChain({ problem: 'expired' });
  chains.push(leafOnly, expired);
  const missing = path.join(leafOnly.dir, 'missing.pem');
  const tls = tlsConfig([leafOnly, expired, { cert: missing, key: leafOnly.key }], { roots: { bundle: leafOnly.root } });
  const { text, ok } = describeCertificates(tls);
  assert.equal(ok, false);
  const [, first, second, third] = text.split('\n\n');
  assert.match(first!, /^tls\.certificates\[0\]: REJECTED \(1 error\)$/m);
  assert.match(first!, /^ {2}#1 leaf: CN=api\.example\.test$/m);
  assert.match(first!, /^ {2}does not verify to a trusted root in the CA bundle /m);
  assert.match(first!, /^ {2}error: .*cert\.pem: chain incomplete: /m);
  assert.match(second!, /^tls\.certificates\[1\]: REJECTED \(1 error\)$/m);
  assert.match(second!, /\(expired 2 days ago\)/);
  assert.match(second!, /^ {2}verifies to the trusted root "CN=Test Root CA"/m, 'the chain itself is fine');
  assert.match(third!, /^tls\.certificates\[2\]: REJECTED \(1 error\)$/m);
  assert.match(third!, /^ {2}\(no certificate could be read\)$/m);
  assert.match(third!, /^ {2}error: .*missing\.pem: cannot read the certificate file: no such file or directory \(ENOENT\)$/m);
});

test('a broken CA bundle is reported at the top', async () => {
  const c = await makeChain();
  chains.push(c);
  const bundle = path.join(c.dir, 'nope.pem');
  const { text, ok } = describeCertificates(tlsConfig([c], { roots: { bundle } }));
  assert.equal(ok, false);
  assert.equal(
    text.split('\n').slice(0, 2).join('\n'),
    `trust: the CA bundle ${bundle} (0 roots)\n  error: ${bundle}: cannot read the CA bundle file: no such file or directory (ENOENT)`,
  );
  assert.match(text, /^tls\.certificates\[0\]: NOT VERIFIED$/m);
});
