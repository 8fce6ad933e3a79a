import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import type { Diagnostic } from '../../gateway/types/policy.js';
import { issueIntermediate, issueLeaf, issueRoot } from '../../gateway/tls/generate.js';
import { loadCertificates } from '../../gateway/tls/load.js';
import { makeChain, tlsConfig, type MakeChainOptions, type TestChain } from '../helpers/chain.js';

const DAY = 86_400_000;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\s*/g;
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function chain(opts: MakeChainOptions = {}): Promise<TestChain> {
  const c = await makeChain(opts);
  dirs.push(c.dir);
  return c;
}

/** Loads one entry trusting the chain's own root.pem. */
function load(c: TestChain, entry: { cert?: string; key?: string; passphrase?: string } = {}, now?: Date) {
  const tls = tlsConfig([{ cert: c.cert, key: c.key, ...entry }], { roots: { bundle: c.root } });
  return loadCertificates(tls, { now });
}

function only(diagnostics: Diagnostic[]): Diagnostic {
  assert.equal(diagnostics.length, 1, diagnostics.map((d) => d.message).join('\n'));
  return diagnostics[0]!;
}

test('a correct full chain loads with no findings', async () => {
  const c = await chain({ cn: 'api.example.test', dns: ['api.example.test', 'WWW.Example.test'], ips: ['127.0.0.1', '::1'] });
  const { certificates, diagnostics } = load(c);
  assert.deepEqual(diagnostics, []);
  assert.equal(certificates.length, 1);
  const [loaded] = certificates;
  assert.equal(loaded!.certFile, c.cert);
  assert.equal(loaded!.keyFile, c.key);
  assert.deepEqual(
    loaded!.chain.map((x) => x.subject),
    ['CN=api.example.test', 'CN=Test Intermediate CA'],
  );
  assert.deepEqual(loaded!.names, ['api.example.test', 'www.example.test', '127.0.0.1', '::1']);
  assert.equal(loaded!.notAfter.getTime(), new Date(loaded!.chain[0]!.validTo).getTime());
  assert.equal(loaded!.pos.path, 'tls.certificates[0]');
});

test('leaf only: chain incomplete, and nothing is loaded', async () => {
  const c = await chain({ problem: 'leaf-only' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  const d = only(diagnostics);
  assert.deepEqual(
    { severity: d.severity, file: d.file, line: d.line, col: d.col, path: d.path },
    { severity: 'error', file: '/etc/wxgw/gateway.yaml', line: 12, col: 7, path: 'tls.certificates[0].cert' },
  );
  assert.equal(
    d.message,
    `${c.cert}: chain incomplete: "CN=api.example.test" is issued by "CN=Test Intermediate CA", which is ` +
      'neither in this file nor a trusted root: serve the full chain (leaf followed by intermediates), e.g. fullchain.pem',
  );
});

test('intermediates in the wrong order: says which must come right after which', async () => {
  const c = await chain({ problem: 'wrong-order' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  assert.equal(
    only(diagnostics).message,
    `${c.cert}: in the wrong order: "CN=Test Intermediate CA 2" (certificate #3) must come right after ` +
      `"CN=api.example.test" (certificate #1), which it issued; serve the leaf first, then each ` +
      `certificate's issuer (#1, #3, #2)`,
  );
});

test('an intermediate placed before the leaf: the server certificate must come first', async () => {
  const c = await chain();
  const [leaf, int] = readFileSync(c.cert, 'utf8').match(PEM_CERT)!;
  writeFileSync(c.cert, int! + leaf!);
  const d = only(load(c).diagnostics);
  assert.equal(
    d.message,
    `${c.cert}: in the wrong order: the server certificate "CN=api.example.test" (certificate #2) must ` +
      `come first, before "CN=Test Intermediate CA" (certificate #1); serve the leaf first, then each ` +
      `certificate's issuer (#2, #1)`,
  );
});

test('the key of another certificate is reported at the key', async () => {
  const c = await chain({ problem: 'wrong-key' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  const d = only(diagnostics);
  assert.equal(d.path, 'tls.certificates[0].key');
  assert.equal(
    d.message,
    `${c.key}: the private key does not match the certificate "CN=api.example.test" in ${c.cert}: ` +
      'it is the key of another certificate; use the key generated together with this certificate',
  );
});

test('an expired leaf is an error with the date and days', async () => {
  const c = await chain({ problem: 'expired' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  const d = only(diagnostics);
  assert.equal(d.severity, 'error');
  assert.match(
    d.message,
    /^\S+cert\.pem: the certificate "CN=api\.example\.test" expired on \d{4}-\d\d-\d\d \(2 days ago\): renew it$/,
  );
});

test('an expired intermediate is an error naming the intermediate', async () => {
  const c = await chain({ problem: 'expired-intermediate' });
  const d = only(load(c).diagnostics);
  assert.match(
    d.message,
    /: the intermediate "CN=Test Intermediate CA" expired on \d{4}-\d\d-\d\d \(1 day ago\): get the current one from your CA and serve it instead$/,
  );
});

test('a leaf that is not valid yet is an error', async () => {
  const c = await chain({ problem: 'not-yet-valid' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  assert.match(
    only(diagnostics).message,
    /: the certificate "CN=api\.example\.test" is not valid yet: it starts on \d{4}-\d\d-\d\d \(in 2 days\); check the server's clock, or serve the previous certificate until then$/,
  );
});

test('a leaf within expiry_warning is loaded with a warning giving the days left', async () => {
  const c = await chain({ notAfter: new Date(Date.now() + 30 * DAY) });
  const notAfter = new Date(new X509Certificate(readFileSync(c.cert)).validTo);
  const now = new Date(notAfter.getTime() - 5 * DAY);
  const { certificates, diagnostics } = load(c, {}, now);
  assert.equal(certificates.length, 1);
  const d = only(diagnostics);
  assert.equal(d.severity, 'warning');
  assert.equal(
    d.message,
    `${c.cert}: the certificate "CN=api.example.test" expires on ${notAfter.toISOString().slice(0, 10)}, in 5 days: renew it soon`,
  );
  // The same leaf one day past its end: now an error.
  const late = load(c, {}, new Date(notAfter.getTime() + DAY));
  assert.equal(late.certificates.length, 0);
  assert.match(only(late.diagnostics).message, /expired on .* \(1 day ago\): renew it$/);
});

test('a self-signed leaf is an error', async () => {
  const c = await chain({ problem: 'self-signed' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  assert.equal(
    only(diagnostics).message,
    `${c.cert}: "CN=api.example.test" is self-signed: clients, WeChat included, reject it; serve a ` +
      'certificate issued by a CA, followed by its intermediates',
  );
});

test('a chain to an untrusted root names the roots it was checked against', async () => {
  const c = await chain({ problem: 'untrusted-root' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  assert.equal(
    only(diagnostics).message,
    `${c.cert}: "CN=Test Intermediate CA" is issued by "CN=Test Root CA", which is not a trusted root in ` +
      `the CA bundle ${c.root}: if "CN=Test Root CA" is an intermediate, add it to this file after ` +
      `"CN=Test Intermediate CA"; if it is your own CA, trust it with tls.roots`,
  );
});

test('with the system roots, a private CA is not trusted', async () => {
  const c = await chain();
  const tls = tlsConfig([{ cert: c.cert, key: c.key }], { roots: 'system' });
  const d = only(loadCertificates(tls).diagnostics);
  assert.match(
    d.message,
    /: "CN=Test Intermediate CA" is issued by "CN=Test Root CA", which is not a trusted root in the system roots \(Node's bundled Mozilla CA list\)/,
  );
});

test('a chain that ends with its own untrusted root says so', async () => {
  const c = await chain({ problem: 'with-root' });
  const other = await chain({ problem: 'untrusted-root' });
  const tls = tlsConfig([{ cert: c.cert, key: c.key }], { roots: { bundle: other.root } });
  assert.equal(
    only(loadCertificates(tls).diagnostics).message,
    `${c.cert}: ends at the self-signed "CN=Test Root CA", which is not a trusted root in the CA bundle ` +
      `${other.root}: serve a chain issued by a trusted CA, or trust this root`,
  );
});

test('a trusted root at the end is served, with a warning that it is not needed', async () => {
  const c = await chain({ problem: 'with-root' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 1);
  assert.equal(certificates[0]!.chain.length, 3, 'served as written');
  const d = only(diagnostics);
  assert.equal(d.severity, 'warning');
  assert.equal(
    d.message,
    `${c.cert}: includes the trusted root "CN=Test Root CA" (certificate #3): clients already have it, so ` +
      'sending it only lengthens every handshake; you may remove it',
  );
});

test('an intermediate of the right name but another key is called out', async () => {
  const c = await chain();
  const impostor = issueIntermediate(issueRoot({ cn: 'Test Root CA' }), { cn: 'Test Intermediate CA' });
  const [leaf] = readFileSync(c.cert, 'utf8').match(PEM_CERT)!;
  writeFileSync(c.cert, leaf! + impostor.cert);
  assert.equal(
    only(load(c).diagnostics).message,
    `${c.cert}: "CN=Test Intermediate CA" (certificate #2) has the name of the issuer of "CN=api.example.test", ` +
      'but not its key: it is another certificate of the same name; serve the intermediate your CA issued ' +
      'together with this certificate',
  );
});

test('a certificate the chain does not need is served, with a warning', async () => {
  const c = await chain();
  writeFileSync(c.cert, readFileSync(c.cert, 'utf8') + issueLeaf(null, { cn: 'stray.example.test' }).cert);
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 1);
  const d = only(diagnostics);
  assert.equal(d.severity, 'warning');
  assert.equal(
    d.message,
    `${c.cert}: "CN=stray.example.test" (certificate #3) is not needed to reach the trusted root ` +
      '"CN=Test Root CA": you may remove it',
  );
});

test('a CA certificate used as the leaf is an error', async () => {
  const c = await chain({ problem: 'ca-as-leaf' });
  const { certificates, diagnostics } = load(c);
  assert.equal(certificates.length, 0);
  assert.equal(
    only(diagnostics).message,
    `${c.cert}: "CN=Test Intermediate CA" is a CA certificate, not a server certificate: the file must ` +
      `start with the server's own certificate (the leaf), followed by its intermediates`,
  );
});

test('a leaf whose extended key usage lacks serverAuth is an error', async () => {
  const c = await chain({ problem: 'client-auth-only' });
  assert.equal(
    only(load(c).diagnostics).message,
    `${c.cert}: "CN=api.example.test" is not valid for a server: its extended key usage allows only ` +
      'clientAuth, not serverAuth; have it reissued for TLS server authentication',
  );
});

test('a leaf without subjectAltName is an error', async () => {
  const c = await chain({ dns: [] });
  assert.equal(
    only(load(c).diagnostics).message,
    `${c.cert}: "CN=api.example.test" has no subjectAltName: clients match the host name only against it; ` +
      'have the certificate reissued with the host names as DNS subjectAltNames',
  );
});

test('an encrypted key loads with its passphrase', async () => {
  const c = await chain({ passphrase: 'correct horse' });
  assert.match(readFileSync(c.key, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
  const { certificates, diagnostics } = load(c, { passphrase: 'correct horse' });
  assert.deepEqual(diagnostics, []);
  assert.equal(certificates.length, 1);
});

test('an encrypted key without a passphrase, or with a wrong one, is an error at the key', async () => {
  const c = await chain({ passphrase: 'correct horse' });
  const missing = only(load(c).diagnostics);
  assert.equal(missing.path, 'tls.certificates[0].key');
  assert.equal(
    missing.message,
    `${c.key}: the private key is encrypted and no passphrase is set: add passphrase to this certificate entry`,
  );
  const wrong = only(load(c, { passphrase: 'battery staple' }).diagnostics);
  assert.equal(wrong.message, `${c.key}: the private key cannot be decrypted with the configured passphrase: check it`);
});

test('file problems name the file and what was found instead', async () => {
  const c = await chain();
  const missing = path.join(c.dir, 'missing.pem');
  assert.equal(
    only(load(c, { cert: missing }).diagnostics).message,
    `${missing}: cannot read the certificate file: no such file or directory (ENOENT)`,
  );

  const empty = path.join(c.dir, 'empty.pem');
  writeFileSync(empty, '\n');
  assert.equal(
    only(load(c, { cert: empty }).diagnostics).message,
    `${empty}: the certificate file is empty: expected PEM (-----BEGIN CERTIFICATE-----)`,
  );

  const der = path.join(c.dir, 'cert.der');
  writeFileSync(der, new X509Certificate(readFileSync(c.cert)).raw);
  assert.equal(
    only(load(c, { cert: der }).diagnostics).message,
    `${der}: holds a DER (binary) certificate, not PEM: convert it with \`openssl x509 -inform der -in ${der} -out ${der}.pem\``,
  );

  const text = path.join(c.dir, 'notes.txt');
  writeFileSync(text, 'see the ticket\n');
  assert.equal(
    only(load(c, { key: text }).diagnostics).message,
    `${text}: holds no PEM block: expected -----BEGIN PRIVATE KEY-----`,
  );
});

test('cert and key swapped: both files say so', async () => {
  const c = await chain();
  const { certificates, diagnostics } = load(c, { cert: c.key, key: c.cert });
  assert.equal(certificates.length, 0);
  assert.deepEqual(
    diagnostics.map((d) => [d.path, d.message]),
    [
      [
        'tls.certificates[0].cert',
        `${c.key}: holds a private key, not a certificate: are cert and key swapped? cert must name the ` +
          'certificate chain file (e.g. fullchain.pem)',
      ],
      [
        'tls.certificates[0].key',
        `${c.cert}: holds a certificate, not a private key: are cert and key swapped? key must name the ` +
          'private key file (e.g. privkey.pem)',
      ],
    ],
  );
});

test('a key inside the certificate file is a warning; the chain is still served', async () => {
  const c = await chain();
  const combined = path.join(c.dir, 'combined.pem');
  writeFileSync(combined, readFileSync(c.cert, 'utf8') + readFileSync(c.key, 'utf8'));
  const { certificates, diagnostics } = load(c, { cert: combined });
  assert.equal(certificates.length, 1);
  assert.equal(certificates[0]!.chain.length, 2);
  const d = only(diagnostics);
  assert.equal(d.severity, 'warning');
  assert.match(d.message, /combined\.pem: also holds a private key: keep the key only in the key file/);
});

test('every problem of every entry is reported, each at its own entry', async () => {
  const leafOnly = await chain({ problem: 'leaf-only' });
  const wrongKey = await chain({ problem: 'wrong-key' });
  const good = await chain();
  const expired = await chain({ problem: 'expired' });
  // An expired leaf served alone: two problems in one file.
  writeFileSync(expired.cert, readFileSync(expired.cert, 'utf8').match(PEM_CERT)![0]!);
  const tls = tlsConfig([leafOnly, wrongKey, good, expired], { roots: { bundle: good.root } });
  const { certificates, diagnostics } = loadCertificates(tls);
  assert.deepEqual(
    certificates.map((l) => l.certFile),
    [good.cert],
  );
  const found = diagnostics.map((d) => ({ line: d.line, path: d.path, message: d.message }));
  assert.equal(found.length, 4, found.map((d) => d.message).join('\n'));
  assert.deepEqual(found.map((d) => [d.line, d.path]), [
    [12, 'tls.certificates[0].cert'],
    [15, 'tls.certificates[1].key'],
    [21, 'tls.certificates[3].cert'],
    [21, 'tls.certificates[3].cert'],
  ]);
  assert.ok(found[0]!.message.startsWith(`${leafOnly.cert}: chain incomplete: `));
  assert.ok(found[1]!.message.startsWith(`${wrongKey.key}: the private key does not match `));
  assert.ok(found[2]!.message.startsWith(`${expired.cert}: the certificate "CN=api.example.test" expired on `));
  assert.ok(found[3]!.message.startsWith(`${expired.cert}: chain incomplete: `));
});

test('a broken CA bundle is reported once, naming the bundle, and does not blame the chains', async () => {
  const c = await chain();
  const bundle = path.join(c.dir, 'no-such-bundle.pem');
  const tls = tlsConfig([{ cert: c.cert, key: c.key }], { roots: { bundle } });
  const { certificates, diagnostics } = loadCertificates(tls);
  assert.equal(certificates.length, 0, 'a chain that could not be verified is not served');
  const d = only(diagnostics);
  assert.equal(d.path, 'tls.roots');
  assert.equal(d.line, 8);
  assert.equal(d.message, `${bundle}: cannot read the CA bundle file: no such file or directory (ENOENT)`);
});

test('paths are shown relative to the working directory when that is shorter', async (t) => {
  const c = await chain({ problem: 'leaf-only' });
  const cwd = process.cwd();
  process.chdir(c.dir);
  t.after(() => process.chdir(cwd));
  assert.match(only(load(c).diagnostics).message, /^cert\.pem: chain incomplete: /);
});
