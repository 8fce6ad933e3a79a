// A real HTTP server speaking the WeChat Pay API v3 as a merchant's client meets it. It checks
// each request's WECHATPAY2-SHA256-RSA2048 Authorization and signs each answer with a platform
// key, both through wechatpay-axios-plugin's Rsa / Formatter / Aes helpers (an implementation
// independent of the gateway's), and serves /v3/certificates with the platform certificates
// AEAD-encrypted under the APIv3 key. Tests tell it to sign badly, with a serial nobody knows,
// without signature or with an old timestamp, and to rotate its platform certificates.
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Aes, Formatter, Rsa } from 'wechatpay-axios-plugin';
import { issueLeaf } from '../../gateway/tls/generate.js';

/** One platform certificate: what Pay signs answers with. */
export interface PlatformIdentity {
  serial: string;
  cert: string;
  key: KeyObject;
}

export function newPlatformIdentity(cn = 'Tenpay.com Root CA'): PlatformIdentity {
  const issued = issueLeaf(null, { cn, dns: [], extendedKeyUsage: [] });
  return { serial: new X509Certificate(issued.cert).serialNumber.toUpperCase(), cert: issued.cert, key: Rsa.from(issued.key, 'private') };
}

/** A merchant API key pair and its certificate serial, as the merchant platform issues them. */
export interface Merchant {
  mchid: string;
  serial: string;
  privateKeyPem: string;
  publicKey: KeyObject;
}

export function newMerchant(mchid = '1900000109'): Merchant {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    mchid,
    serial: randomBytes(20).toString('hex').toUpperCase(),
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: pair.publicKey,
  };
}

export type AnswerMode = 'good' | 'bad_signature' | 'unknown_serial' | 'no_signature' | 'stale';

export interface FakePayCall {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Whether the Authorization verified with the merchant's public key. */
  authorized: boolean;
  why?: string;
}

export interface FakeWechatpayApi {
  url: string;
  calls: FakePayCall[];
  /** Certificates /v3/certificates lists; the first signs answers unless `signer` is set. */
  platforms: PlatformIdentity[];
  signer: PlatformIdentity | undefined;
  mode: AnswerMode;
  /** Pay's clock, seconds; the real one by default. */
  clock: () => number;
  /** The merchant whose Authorization is accepted (a test may rotate its key). */
  merchant: Merchant;
  /** While set, answers other than /v3/certificates wait until release(): a Pay slower than any timeout. */
  hold: boolean;
  release(): void;
  /** How many /v3/certificates calls arrived. */
  certificateDownloads(): number;
  close(): Promise<void>;
}

const AUTH = /^WECHATPAY2-SHA256-RSA2048 (.+)$/;

function authorizationFields(header: string | undefined): Record<string, string> | undefined {
  const m = AUTH.exec(header ?? '');
  if (!m) return undefined;
  const out: Record<string, string> = {};
  for (const part of m[1]!.split(',')) {
    const kv = /^\s*([a-z_]+)="([^"]*)"\s*$/.exec(part);
    if (!kv) return undefined;
    out[kv[1]!] = kv[2]!;
  }
  return out;
}

export async function startFakeWechatpayApi(opts: { merchant: Merchant; apiv3Key: string; platforms: PlatformIdentity[] }): Promise<FakeWechatpayApi> {
  const calls: FakePayCall[] = [];
  const held: (() => void)[] = [];
  const stranger = newPlatformIdentity('stranger');
  const fake: FakeWechatpayApi = {
    url: '',
    calls,
    platforms: [...opts.platforms],
    signer: undefined,
    mode: 'good',
    clock: () => Formatter.timestamp(),
    merchant: opts.merchant,
    hold: false,
    release() {
      fake.hold = false;
      for (const send of held.splice(0)) send();
    },
    certificateDownloads: () => calls.filter((c) => c.url === '/v3/certificates').length,
    close: () => {
      fake.release();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  /** What Pay verifies the signature over: the body, or a multipart upload's `meta` (read by the platform's own parser). */
  const signedText = async (headers: IncomingMessage['headers'], raw: Buffer): Promise<string | undefined> => {
    const type = headers['content-type'] ?? '';
    if (!/^multipart\/form-data/i.test(type)) return raw.toString('utf8');
    const meta = (await new Response(new Uint8Array(raw), { headers: { 'content-type': type } }).formData()).get('meta');
    return typeof meta === 'string' ? meta : undefined;
  };

  const check = async (method: string, url: string, headers: IncomingMessage['headers'], raw: Buffer): Promise<string | undefined> => {
    const body = await signedText(headers, raw);
    if (body === undefined) return 'multipart upload without meta';
    const { merchant } = fake;
    const f = authorizationFields(headers.authorization);
    if (!f) return 'no WECHATPAY2-SHA256-RSA2048 Authorization';
    if (f.mchid !== merchant.mchid) return `mchid ${f.mchid} is not the merchant's`;
    if (f.serial_no !== merchant.serial) return `serial_no ${f.serial_no} is not the merchant certificate's`;
    if (!f.nonce_str || !f.timestamp || !f.signature) return 'Authorization lacks nonce_str, timestamp or signature';
    if (Math.abs(fake.clock() - Number(f.timestamp)) > 300) return 'timestamp too far off';
    if (!headers['user-agent']) return 'no User-Agent';
    const message = Formatter.request(method, url, f.timestamp, f.nonce_str, body);
    return Rsa.verify(message, f.signature, merchant.publicKey) ? undefined : 'signature does not verify';
  };

  const certificatesBody = (): string =>
    JSON.stringify({
      data: fake.platforms.map((p) => {
        const nonce = randomBytes(6).toString('hex');
        const cert = new X509Certificate(p.cert);
        return {
          serial_no: p.serial,
          effective_time: new Date(cert.validFrom).toISOString(),
          expire_time: new Date(cert.validTo).toISOString(),
          encrypt_certificate: { algorithm: 'AEAD_AES_256_GCM', nonce, associated_data: 'certificate', ciphertext: Aes.AesGcm.encrypt(p.cert, opts.apiv3Key, nonce, 'certificate') },
        };
      }),
    });

  const route = async (method: string, url: string, headers: IncomingMessage['headers'], raw: Buffer): Promise<{ status: number; body: string }> => {
    const path = url.split('?', 1)[0]!;
    const body = raw.toString('utf8');
    if (method === 'POST' && path === '/v3/merchant/media/upload') {
      const file = (await new Response(new Uint8Array(raw), { headers: { 'content-type': headers['content-type'] ?? '' } }).formData()).get('file');
      return { status: 200, body: JSON.stringify({ media_id: `fake-media-${file instanceof Blob ? file.size : 0}` }) };
    }
    if (method === 'GET' && path === '/v3/certificates') return { status: 200, body: certificatesBody() };
    if (method === 'POST' && path === '/v3/pay/transactions/jsapi') {
      const order = JSON.parse(body) as { out_trade_no?: string };
      return { status: 200, body: JSON.stringify({ prepay_id: `wx${order.out_trade_no ?? ''}prepay` }) };
    }
    const m = /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)$/.exec(path);
    if (method === 'GET' && m) {
      if (m[1] === 'missing') return { status: 404, body: JSON.stringify({ code: 'ORDER_NOT_EXIST', message: '订单不存在' }) };
      return { status: 200, body: JSON.stringify({ out_trade_no: m[1], trade_state: 'SUCCESS', amount: { total: 100, currency: 'CNY' }, mchid: fake.merchant.mchid }) };
    }
    if (method === 'GET' && path === '/v3/billdownload/file') return { status: 200, body: 'bill,file,unsigned\n' };
    return { status: 404, body: JSON.stringify({ code: 'NOT_FOUND', message: 'no such API' }) };
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void answer());
    const answer = async (): Promise<void> => {
      const method = req.method ?? 'GET';
      const url = req.url ?? '/';
      const raw = Buffer.concat(chunks);
      const body = raw.toString('utf8');
      const why = await check(method, url, req.headers, raw);
      calls.push({ method, url, headers: req.headers, body, authorized: why === undefined, ...(why !== undefined && { why }) });
      if (why !== undefined) {
        // As Pay: a request it cannot authenticate gets an unsigned 401.
        res.writeHead(401, { 'content-type': 'application/json', 'request-id': 'fake-401' });
        res.end(JSON.stringify({ code: 'SIGN_ERROR', message: why }));
        return;
      }
      const answer = await route(method, url, req.headers, raw);
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'request-id': `fake-${calls.length}` };
      const signer = fake.signer ?? fake.platforms[0]!;
      if (fake.mode !== 'no_signature' && !url.startsWith('/v3/billdownload/')) {
        const timestamp = String(fake.mode === 'stale' ? fake.clock() - 3600 : fake.clock());
        const nonce = Formatter.nonce();
        const key = fake.mode === 'unknown_serial' ? stranger.key : signer.key;
        let signature = Rsa.sign(Formatter.response(timestamp, nonce, answer.body), key);
        if (fake.mode === 'bad_signature') signature = Rsa.sign(Formatter.response(timestamp, nonce, `${answer.body} `), key);
        Object.assign(headers, {
          'wechatpay-timestamp': timestamp,
          'wechatpay-nonce': nonce,
          'wechatpay-signature': signature,
          'wechatpay-serial': fake.mode === 'unknown_serial' ? stranger.serial : signer.serial,
          'wechatpay-signature-type': 'WECHATPAY2-SHA256-RSA2048',
        });
      }
      const send = (): void => {
        res.writeHead(answer.status, headers);
        res.end(answer.body);
      };
      if (fake.hold && url !== '/v3/certificates') held.push(send);
      else send();
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** The SPKI PEM of a platform key, for public-key mode (`public_keys`). */
export function publicKeyPem(p: PlatformIdentity): string {
  return createPublicKey(p.key).export({ type: 'spki', format: 'pem' }).toString();
}
