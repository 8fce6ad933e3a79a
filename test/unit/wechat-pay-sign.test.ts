// The Pay v3 client protocol (gateway/wechat/pay-sign.ts) checked against wechatpay-axios-plugin,
// an implementation written without ours: the Authorization it would verify, and the
// /v3/certificates entries it would encrypt, with each way an entry can be wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { Aes, Formatter, Rsa } from 'wechatpay-axios-plugin';
import { CertificatesError, multipartMeta, parsePlatformCertificates, payAuthorization, payNonce } from '../../gateway/wechat/pay-sign.js';
import { issueLeaf } from '../../gateway/tls/generate.js';

const APIV3 = 'k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6';
const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });

test('the Authorization verifies with the independent implementation, over path, query and body as sent', () => {
  const body = Buffer.from(JSON.stringify({ out_trade_no: '订单-1', amount: { total: 1 } }));
  const header = payAuthorization({ mchid: '1900000109', serial: 'ABC123', key: pair.privateKey, method: 'POST', url: '/v3/refund/domestic/refunds?x=1', timestamp: 1733100000, nonce: 'N0NCE', body });
  const m = /^WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="N0NCE",signature="([^"]+)",timestamp="1733100000",serial_no="ABC123"$/.exec(header);
  assert.ok(m, header);
  const message = Formatter.request('POST', '/v3/refund/domestic/refunds?x=1', 1733100000, 'N0NCE', body.toString('utf8'));
  assert.ok(Rsa.verify(message, m[1]!, pair.publicKey));
  assert.ok(!Rsa.verify(Formatter.request('POST', '/v3/refund/domestic/refunds', 1733100000, 'N0NCE', body.toString('utf8')), m[1]!, pair.publicKey), 'the query is signed');
});

test('nonces are 32 letters and digits, different each time', () => {
  const a = payNonce();
  assert.match(a, /^[A-Za-z0-9]{32}$/);
  assert.notEqual(a, payNonce());
});

function entry(cert: string, opts: { key?: string; serial?: string; aad?: string } = {}): Record<string, unknown> {
  const nonce = 'abcdef123456';
  const aad = opts.aad ?? 'certificate';
  return {
    serial_no: opts.serial ?? new X509Certificate(cert).serialNumber,
    encrypt_certificate: { algorithm: 'AEAD_AES_256_GCM', nonce, associated_data: aad, ciphertext: Aes.AesGcm.encrypt(cert, opts.key ?? APIV3, nonce, aad) },
  };
}

const now = Date.now();
const good = issueLeaf(null, { cn: 'platform', dns: [], extendedKeyUsage: [] });
const expired = issueLeaf(null, { cn: 'old platform', dns: [], extendedKeyUsage: [], notBefore: new Date(now - 3 * 86_400_000), notAfter: new Date(now - 86_400_000) });

test('certificates are decrypted under the APIv3 key; expired ones are left out', () => {
  const body = Buffer.from(JSON.stringify({ data: [entry(good.cert), entry(expired.cert)] }));
  const certs = parsePlatformCertificates(body, Buffer.from(APIV3), now);
  assert.equal(certs.length, 1);
  assert.equal(certs[0]!.serial, new X509Certificate(good.cert).serialNumber.toUpperCase());
  // The key verifies what the certificate's private key signs.
  const signature = Rsa.sign('t\nn\nbody\n', createPrivateKey(good.key));
  assert.ok(Rsa.verify('t\nn\nbody\n', signature, certs[0]!.key));
});

test('an entry under another key, with other associated data, a wrong serial or no certificate inside is refused', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['another APIv3 key', entry(good.cert, { key: 'Z'.repeat(32) }), /does not authenticate/],
    ['changed associated_data', { ...entry(good.cert), encrypt_certificate: { ...(entry(good.cert).encrypt_certificate as object), associated_data: 'other' } }, /does not authenticate/],
    ['a serial_no that is not the certificate\'s', entry(good.cert, { serial: 'DEADBEEF' }), /holds a certificate with serial/],
    ['not a certificate', entry('hello', { serial: 'AA' }), /not an X.509 certificate/],
    ['another algorithm', { serial_no: 'AA', encrypt_certificate: { algorithm: 'AES_128_CBC', nonce: 'n', ciphertext: 'AAAA' } }, /AEAD_AES_256_GCM/],
  ];
  for (const [what, item, why] of cases) {
    const body = Buffer.from(JSON.stringify({ data: [item] }));
    assert.throws(() => parsePlatformCertificates(body, Buffer.from(APIV3), now), (err: unknown) => err instanceof CertificatesError && why.test(err.message), what);
  }
  assert.throws(() => parsePlatformCertificates(Buffer.from('{"code":"SIGN_ERROR"}'), Buffer.from(APIV3), now), /no data array/);
  assert.throws(() => parsePlatformCertificates(Buffer.from('<html>'), Buffer.from(APIV3), now), /not JSON/);
});

test('a multipart upload is signed over its meta part, found as a multipart parser finds it', async () => {
  const meta = '{"filename":"a.png","sha256":"00"}';
  const form = new FormData();
  form.append('file', new Blob([Buffer.from('\r\n--not-the-boundary\r\n')]), 'a.png');
  form.append('meta', meta);
  const req = new Request('http://x.invalid/', { method: 'POST', body: form });
  const type = req.headers.get('content-type')!;
  const body = Buffer.from(await req.arrayBuffer());
  assert.equal(multipartMeta(body, type)?.toString(), meta);
  // A preamble before the first delimiter and a quoted boundary parameter.
  const boundary = /boundary=(.+)$/.exec(type)![1]!;
  assert.equal(multipartMeta(Buffer.concat([Buffer.from('preamble'), Buffer.from('\r\n'), body]), `multipart/form-data; boundary="${boundary}"`)?.toString(), meta);
  const without = new FormData();
  without.append('file', new Blob([Buffer.from('x')]), 'a.png');
  const bare = new Request('http://x.invalid/', { method: 'POST', body: without });
  assert.equal(multipartMeta(Buffer.from(await bare.arrayBuffer()), bare.headers.get('content-type')!), undefined);
  assert.equal(multipartMeta(body, 'multipart/form-data'), undefined);
});
