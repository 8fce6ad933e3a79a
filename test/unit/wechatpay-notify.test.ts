// The WeChat Pay API v3 notification guard with keys made in the test: a platform certificate
// (made with node-forge; its serial is the Wechatpay-Serial) and a PUB_KEY_ID_ public key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { compileWechatPayNotify, PAY_VERIFIED_HEADER } from '../../gateway/guards/wechatpay-notify.js';
import type { CallbackGuard, CallbackOutcome, CallbackRequest } from '../../gateway/guards/callback-types.js';
import type { WechatPayConfig, WechatPayNotifyConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { StoreUnavailableError, type Store } from '../../gateway/store/store.js';
import { encryptPayResource, payNotification, payNotificationBody } from '../helpers/wechat-callback.js';

const pos = { file: 'test.yaml', line: 1, col: 1, path: 'routes[0].wechatpay_notify' };
const T = 1_714_036_504;
const APIV3_KEY = 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6'; // 32 bytes of utf-8

function rsa(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** A self-signed "platform certificate" for `keys`, and its serial in WeChat Pay's spelling. */
function platformCertificate(keys: { privateKey: KeyObject; publicKey: KeyObject }): { serial: string; pem: string } {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = '5157f09efdc096de15ebe81a47057a7232f1b8e1';
  cert.validity.notBefore = new Date(Date.UTC(2024, 0, 1));
  cert.validity.notAfter = new Date(Date.UTC(2029, 0, 1));
  const name = [{ name: 'commonName', value: 'Tenpay.com Root CA test' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()), forge.md.sha256.create());
  const pem = forge.pki.certificateToPem(cert);
  return { serial: new X509Certificate(pem).serialNumber, pem };
}

const certKeys = rsa();
const cert = platformCertificate(certKeys);
const pubKeys = rsa();
const PUB_KEY_ID = 'PUB_KEY_ID_0114232134912410000000000000000000';
const otherKeys = rsa();

const pay: WechatPayConfig = {
  apiv3_key: APIV3_KEY,
  keys: [
    // What the policy loader stores for a certificate: its serial and the public key taken from it.
    { serial: cert.serial, public_key_pem: new X509Certificate(cert.pem).publicKey.export({ type: 'spki', format: 'pem' }).toString(), file: '/certs/wechatpay_platform.pem' },
    { serial: PUB_KEY_ID, public_key_pem: pubKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString(), file: '/certs/pub_key.pem' },
  ],
  pos,
};

function guardFor(o: { decrypt?: boolean; store?: Store; apiv3Key?: string; maxBody?: number } = {}): CallbackGuard {
  const now = () => T * 1000;
  const cfg: WechatPayNotifyConfig = { decrypt: o.decrypt ?? true, max_skew: 300_000, max_body: o.maxBody ?? 65_536, pos };
  return compileWechatPayNotify(cfg, { ...pay, apiv3_key: o.apiv3Key ?? APIV3_KEY }, o.store ?? new MemoryStore({ now }), now);
}

const transaction = JSON.stringify({ mchid: '1230000109', appid: 'wxd678efh567hg6787', out_trade_no: '1217752501201407033233368018', trade_state: 'SUCCESS', amount: { total: 100, payer_total: 100, currency: 'CNY' } });
const body = payNotificationBody(encryptPayResource(APIV3_KEY, transaction), undefined, 'EV-2018022511223320873');

function refused(outcome: CallbackOutcome, reason: string): void {
  assert.equal(outcome.kind, 'refuse', JSON.stringify(outcome));
  if (outcome.kind === 'refuse') assert.equal(outcome.reason, reason, outcome.detail);
}

function forwarded(outcome: CallbackOutcome): Extract<CallbackOutcome, { kind: 'forward' }> {
  assert.equal(outcome.kind, 'forward', JSON.stringify(outcome));
  return outcome as Extract<CallbackOutcome, { kind: 'forward' }>;
}

test('the certificate serial is the upper-case hex WeChat Pay sends', () => {
  assert.equal(cert.serial, '5157F09EFDC096DE15EBE81A47057A7232F1B8E1');
});

test('platform-certificate key: verified and decrypted; the envelope id and event type follow in headers', async () => {
  const f = forwarded(await guardFor().check(payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T })));
  assert.equal(f.body.toString(), transaction);
  assert.equal(f.contentType, 'application/json; charset=utf-8');
  assert.deepEqual(f.headers, {
    [PAY_VERIFIED_HEADER]: 'decrypted',
    'x-wechatpay-notify-id': 'EV-2018022511223320873',
    'x-wechatpay-event-type': 'TRANSACTION.SUCCESS',
    'x-wechatpay-original-type': 'transaction',
  });
  assert.ok(f.dropHeaders?.includes('wechatpay-signature'));
  assert.equal(f.sealReply, undefined);
});

test('the serial matches whatever the case of its hex', async () => {
  forwarded(await guardFor().check(payNotification(certKeys.privateKey, cert.serial.toLowerCase(), body, { timestamp: T })));
});

test('PUB_KEY_ID_ public key: verified; decrypt: false forwards the body bytes exactly as received', async () => {
  // Odd spacing and key order: re-serialising would change the bytes and break the signature.
  const raw = Buffer.from(`{ "id":"EV-1",  "resource" : ${JSON.stringify(encryptPayResource(APIV3_KEY, transaction))} ,"event_type":"REFUND.SUCCESS"}\n`);
  const req = payNotification(pubKeys.privateKey, PUB_KEY_ID, raw, { timestamp: T });
  const f = forwarded(await guardFor({ decrypt: false }).check(req));
  assert.equal(f.body, req.body);
  assert.equal(f.contentType, 'application/json');
  assert.deepEqual(f.headers, { [PAY_VERIFIED_HEADER]: 'signature' });
});

test('unknown serial, key of another serial, tampered body byte and bad signatures are refused', async () => {
  const g = guardFor();
  refused(await g.check(payNotification(certKeys.privateKey, 'PUB_KEY_ID_0000', body, { timestamp: T })), 'serial_unknown');
  refused(await g.check(payNotification(pubKeys.privateKey, cert.serial, body, { timestamp: T })), 'signature_invalid');
  refused(await g.check(payNotification(otherKeys.privateKey, PUB_KEY_ID, body, { timestamp: T })), 'signature_invalid');

  const req = payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T });
  for (const at of [0, 10, req.body.length - 1]) {
    const tampered = Buffer.from(req.body);
    tampered[at] = tampered[at]! ^ 0x01;
    refused(await g.check({ ...req, body: tampered }), 'signature_invalid');
  }
  // A trailing newline is not part of what was signed.
  refused(await g.check({ ...req, body: Buffer.concat([req.body, Buffer.from('\n')]) }), 'signature_invalid');
  // The signature covers timestamp and nonce too.
  refused(await g.check({ ...req, headers: { ...req.headers, 'wechatpay-nonce': 'X' + String(req.headers['wechatpay-nonce']) } }), 'signature_invalid');
  refused(await g.check({ ...req, headers: { ...req.headers, 'wechatpay-signature': 'WECHATPAY/SIGNTEST/' + 'A'.repeat(300) } }), 'signature_invalid');
  refused(await g.check({ ...req, headers: { ...req.headers, 'wechatpay-signature': '' } }), 'callback_malformed');
  // None of those used the nonce up.
  forwarded(await g.check(req));
});

test('missing headers and malformed timestamps are callback_malformed; wrong method refused', async () => {
  const g = guardFor();
  const req = payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T });
  for (const name of ['wechatpay-serial', 'wechatpay-signature', 'wechatpay-timestamp', 'wechatpay-nonce']) {
    const headers = { ...req.headers };
    delete headers[name];
    refused(await g.check({ ...req, headers }), 'callback_malformed');
  }
  refused(await g.check({ ...req, headers: { ...req.headers, 'wechatpay-timestamp': '1714036504.5' } }), 'callback_malformed');
  refused(await g.check({ ...req, method: 'GET' }), 'method_not_allowed');
});

test('stale notifications are refused; a replayed or re-signed one is answered from the store', async () => {
  const g = guardFor();
  refused(await g.check(payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T - 301 })), 'timestamp_stale');
  refused(await g.check(payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T + 301 })), 'timestamp_stale');
  const req = payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T - 299, nonce: 'NONCE0123456789' });
  const answer = { status: 200, contentType: 'application/json', body: Buffer.from('{"code":"SUCCESS"}') };
  forwarded(await g.check(req)).delivery!.commit(answer);
  assert.deepEqual(await g.check(req), { kind: 'answer', ...answer, replayed: 'request' });
  // The same notification signed again (another key, same store) carries the same id: answered as it was.
  assert.deepEqual(await g.check(payNotification(pubKeys.privateKey, PUB_KEY_ID, body, { timestamp: T, nonce: 'NONCE0123456789' })), { kind: 'answer', ...answer, replayed: 'message' });
  // Another notification with that nonce is a new one.
  forwarded(await g.check(payNotification(certKeys.privateKey, cert.serial, payNotificationBody(encryptPayResource(APIV3_KEY, transaction)), { timestamp: T - 299, nonce: 'NONCE0123456789' })));
});

test('decryption: wrong APIv3 key, tampered tag, tampered associated data; non-JSON plaintext goes on as text', async () => {
  const g = guardFor();
  const send = (b: string): CallbackRequest => payNotification(certKeys.privateKey, cert.serial, b, { timestamp: T });

  refused(await guardFor({ apiv3Key: 'Z'.repeat(32) }).check(send(body)), 'decrypt_failed');

  const resource = encryptPayResource(APIV3_KEY, transaction);
  const data = Buffer.from(resource.ciphertext!, 'base64');
  data[data.length - 1] = data[data.length - 1]! ^ 0x80; // last byte of the tag
  refused(await g.check(send(payNotificationBody({ ...resource, ciphertext: data.toString('base64') }))), 'decrypt_failed');
  refused(await g.check(send(payNotificationBody({ ...resource, associated_data: 'refund' }))), 'decrypt_failed');
  refused(await g.check(send(payNotificationBody({ ...resource, ciphertext: data.subarray(0, 16).toString('base64') }))), 'decrypt_failed');
  refused(await g.check(send(payNotificationBody({ ...resource, algorithm: 'AES_128_CBC' }))), 'decrypt_failed');
  const text = forwarded(await g.check(send(payNotificationBody(encryptPayResource(APIV3_KEY, 'not json')))));
  assert.equal(text.body.toString(), 'not json');
  assert.equal(text.contentType, 'text/plain; charset=utf-8');
  // Signed but not a notification envelope.
  refused(await g.check(send('{"id":"EV-1"}')), 'callback_malformed');
  refused(await g.check(send('not json')), 'callback_malformed');
  // An empty associated_data is valid (WeChat Pay sends "" for some resources).
  const f = forwarded(await g.check(send(payNotificationBody(encryptPayResource(APIV3_KEY, transaction, '')))));
  assert.equal(f.body.toString(), transaction);
});

test('oversized bodies are refused before any work', async () => {
  refused(await guardFor({ maxBody: 100 }).check(payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T })), 'body_too_large');
});

test('a store that cannot answer makes check() reject with StoreUnavailableError', async () => {
  const down: Store = {
    kind: 'redis',
    connected: false,
    hit: () => Promise.reject(new StoreUnavailableError('down')),
    claim: () => Promise.reject(new StoreUnavailableError('down')),
    put: () => Promise.reject(new StoreUnavailableError('down')),
    get: () => Promise.reject(new StoreUnavailableError('down')),
    release: () => Promise.reject(new StoreUnavailableError('down')),
    close: () => Promise.resolve(),
  };
  await assert.rejects(guardFor({ store: down }).check(payNotification(certKeys.privateKey, cert.serial, body, { timestamp: T })), StoreUnavailableError);
});

test('inconsistent configuration is refused at compile time', () => {
  assert.throws(() => guardFor({ apiv3Key: 'short' }), /32-byte/);
  const now = () => T * 1000;
  const cfg: WechatPayNotifyConfig = { decrypt: false, max_skew: 300_000, max_body: 65_536, pos };
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  assert.throws(() => compileWechatPayNotify(cfg, { ...pay, keys: [{ serial: 'X', public_key_pem: ec, file: '/x.pem' }] }, new MemoryStore({ now }), now), /RSA/);
});
