// The Pay API egress listener (`wechatpay.egress`): plain HTTP on a loopback or pod-local
// address, used by the backend as its Pay API base URL. Each call is buffered (it is signed),
// signed with the merchant key, sent to `api_base`, and its answer buffered and verified with the
// platform key its Wechatpay-Serial names before anything reaches the backend. The merchant key
// is read from the policy in force for each call and appears in no header, log line or error.
//
//   startPayEgress(deps) -> { address, close() }
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { REASONS, errorBody, type Reason } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { WechatPayConfig, WechatPayEgressConfig } from '../types/policy.js';
import { multipartMeta } from '../wechat/pay-sign.js';
import { PayCallError, PayClient, type Merchant, type PayAnswer } from './pay-client.js';
import { PlatformKeys, checkAnswer, type Trigger } from './platform-keys.js';

/**
 * Answers Pay does not sign: files whose hash the backend checks against the signed answer that
 * gave their URL (bills, statements), and complaint images. As wechatpay-axios-plugin lists them.
 */
const DOWNLOADS = new Set(['/v3/billdownload/file', '/v3/new-tax-control-fapiao/download', '/v3/transferdownload/elecvoucherfile', '/v3/transferdownload/signfile', '/v3/global/statements', '/v3/statements']);
const COMPLAINT_IMAGE = /^\/v3\/(?:global\/)?merchant-service\/images\/(?!upload).{6,}/;

/** Request headers the backend's SDK sends that Pay reads; every other one, Authorization first, stays here. */
const FORWARDED = ['content-type', 'wechatpay-serial', 'accept-language'];
/** Answer headers the backend's SDK reads (it may verify the signature again: the headers are Pay's own). */
const RETURNED = ['content-type', 'content-disposition', 'date', 'request-id', 'wechatpay-nonce', 'wechatpay-serial', 'wechatpay-signature', 'wechatpay-signature-type', 'wechatpay-timestamp'];

export interface PayEgressDeps {
  /** The `wechatpay` section of the policy in force (keys and egress may change on reload). */
  section(): WechatPayConfig | undefined;
  logger: Logger;
  registry: Registry;
  now: () => number;
}

export interface PayEgress {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

interface Compiled {
  egress: WechatPayEgressConfig;
  merchant: Merchant;
  pinned: Map<string, KeyObject>;
  /** The APIv3 key, and the previous one until its `until` (epoch ms). */
  apiv3Keys: { key: Buffer; until: number }[];
}

function counters(registry: Registry) {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'wxgw_wechatpay_egress_requests_total',
      help: 'Backend calls through the Pay egress, by result: verified, download (a file Pay does not sign), unverified, too_large, timeout, unavailable, body_too_large, bad_request.',
      labelNames: ['result'],
      registers,
    }),
    failures: new Counter({
      name: 'wxgw_wechatpay_egress_verify_failures_total',
      help: 'Pay answers refused before the backend saw them, by why: missing_headers, stale_timestamp, unknown_serial, bad_signature.',
      labelNames: ['why'],
      registers,
    }),
    refreshes: new Counter({
      name: 'wxgw_wechatpay_platform_cert_refresh_total',
      help: 'Downloads of the platform certificates from /v3/certificates, by trigger (start, schedule, unknown_serial) and result (ok, failed).',
      labelNames: ['trigger', 'result'],
      registers,
    }),
  };
}

/** Compiles what a `wechatpay` section gives the egress, once per section object (a reload makes a new one). */
function compiler(): (section: WechatPayConfig | undefined) => Compiled | undefined {
  const done = new WeakMap<WechatPayConfig, Compiled>();
  return (section) => {
    if (!section?.egress) return undefined;
    let c = done.get(section);
    if (!c) {
      const { egress } = section;
      const previous = section.previous?.apiv3_key !== undefined ? [{ key: section.previous.apiv3_key, until: section.previous.until }] : [];
      c = {
        egress,
        merchant: { mchid: egress.mchid, serial: egress.serial_no, key: createPrivateKey(egress.private_key) },
        pinned: new Map(section.keys.map((k) => [k.serial.toUpperCase(), createPublicKey(k.public_key_pem)])),
        apiv3Keys: [...(section.apiv3_key !== undefined ? [{ key: section.apiv3_key, until: Number.POSITIVE_INFINITY }] : []), ...previous].map((k) => ({ key: Buffer.from(k.key, 'utf8'), until: k.until })),
      };
      done.set(section, c);
    }
    return c;
  };
}

async function readBounded(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** An error answer's `code` when it is a bare token such as SIGN_ERROR; nothing else of it is read. */
function payCode(body: Buffer): string | undefined {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { code?: unknown } | null)?.code;
    return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

function returnedHeaders(headers: PayAnswer['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of RETURNED) {
    const v = headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}

export async function startPayEgress(deps: PayEgressDeps): Promise<PayEgress> {
  const { logger, now } = deps;
  const metrics = counters(deps.registry);
  const compile = compiler();
  // A reload cannot remove the section while the listener runs (reloader.ts: restart required).
  const current = (): Compiled => {
    const c = compile(deps.section());
    if (!c) throw new Error('the policy in force has no wechatpay.egress');
    return c;
  };
  const first = current();
  const client = new PayClient();

  const keys = new PlatformKeys({
    pinned: () => current().pinned,
    downloads: () => {
      const c = current();
      const t = now();
      const apiv3Keys = c.apiv3Keys.filter((k) => k.until > t).map((k) => k.key);
      return c.egress.download_certificates && apiv3Keys.length > 0 ? { apiv3Keys, maxSkew: c.egress.max_skew } : undefined;
    },
    fetchCertificates: () => {
      const c = current();
      return client.call(c.egress.api_base, c.merchant, { method: 'GET', url: '/v3/certificates', body: Buffer.alloc(0), headers: {} }, { timeout: c.egress.timeout, maxAnswer: c.egress.max_body, now: now() });
    },
    now,
    refreshed(trigger: Trigger, result, detail) {
      metrics.refreshes.inc({ trigger, result });
      if (result === 'ok') logger.info({ trigger, serials: detail.serials }, 'wechatpay platform certificates downloaded');
      else logger.warn({ trigger, err: detail.error }, 'wechatpay platform certificates could not be downloaded; answers signed with an unknown serial are refused until a download succeeds');
    },
  });

  const answer = (res: ServerResponse, reason: Reason, requestId: string, message?: string): void => {
    const body = errorBody(reason, requestId, message);
    res.writeHead(REASONS[reason].status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': requestId });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const requestId = randomUUID();
    const method = req.method ?? 'GET';
    const target = req.url ?? '/';
    const path = target.split('?', 1)[0]!;
    const log = (status: number, result: string, extra: Record<string, unknown> = {}): void => {
      metrics.requests.inc({ result });
      // The path only: a query names orders and users.
      const line = { egress: 'wechatpay', request_id: requestId, method, path, status, result, verified: result === 'verified', duration_ms: Math.round((performance.now() - started) * 10) / 10, ...extra };
      if (result === 'verified' || result === 'download') logger.info(line, 'wechatpay egress call');
      else logger.warn(line, 'wechatpay egress call');
    };
    const c = current();
    if (!target.startsWith('/') || target.startsWith('//')) {
      answer(res, 'bad_request', requestId, 'send the Pay API path (origin-form, e.g. /v3/certificates) to the egress listener');
      log(400, 'bad_request');
      return;
    }
    const body = await readBounded(req, c.egress.max_body);
    if (!body) {
      answer(res, 'body_too_large', requestId, `the body is larger than the ${c.egress.max_body} bytes wechatpay.egress.max_body allows`);
      log(413, 'body_too_large');
      return;
    }
    const headers: Record<string, string> = {};
    for (const name of FORWARDED) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    const contentType = headers['content-type'] ?? '';
    const signed = /^multipart\/form-data\b/i.test(contentType) ? multipartMeta(body, contentType) : body;
    if (!signed) {
      answer(res, 'bad_request', requestId, 'a multipart upload to WeChat Pay needs its `meta` part: Pay signs that, not the body');
      log(400, 'bad_request');
      return;
    }
    const call = { method, url: target, body, signed, headers };
    const opts = { timeout: c.egress.timeout, maxAnswer: c.egress.max_body, now: now() };
    try {
      if (method === 'GET' && (DOWNLOADS.has(path) || COMPLAINT_IMAGE.test(path))) {
        const got = await client.stream(c.egress.api_base, c.merchant, call, opts);
        res.writeHead(got.status, { ...returnedHeaders(got.headers), 'x-request-id': requestId });
        got.body.pipe(res);
        got.body.once('error', () => res.destroy());
        log(got.status, 'download', { pay_status: got.status });
        return;
      }
      const got = await client.call(c.egress.api_base, c.merchant, call, opts);
      const payRequestId = typeof got.headers['request-id'] === 'string' ? got.headers['request-id'] : undefined;
      const why = await checkAnswer(got, c.egress.max_skew, now(), (serial) => keys.keyFor(serial));
      if (why) {
        metrics.failures.inc({ why });
        // Pay signs no answer to a request it could not authenticate (401 SIGN_ERROR): its status
        // and code (a bare token) are what an operator needs; nothing else of the answer goes on.
        const code = payCode(got.body);
        const what = `HTTP ${got.status}${code ? ` ${code}` : ''}`;
        answer(res, 'wechatpay_answer_unverified', requestId, `WeChat Pay answered ${what}, but the answer did not verify (${why.replace('_', ' ')}); it is not passed on`);
        log(502, 'unverified', { pay_status: got.status, pay_code: code, pay_request_id: payRequestId, why, serial: got.headers['wechatpay-serial'] });
        return;
      }
      res.writeHead(got.status, { ...returnedHeaders(got.headers), 'x-wxgw-pay-verified': 'true', 'x-request-id': requestId });
      res.end(got.body);
      log(got.status, 'verified', { pay_status: got.status, pay_request_id: payRequestId });
    } catch (err) {
      if (!(err instanceof PayCallError)) throw err;
      const reason: Reason = err.kind === 'timeout' ? 'wechatpay_timeout' : err.kind === 'too_large' ? 'wechatpay_answer_unverified' : 'wechatpay_unavailable';
      answer(res, reason, requestId, err.kind === 'too_large' ? `WeChat Pay's answer is larger than wechatpay.egress.max_body (${c.egress.max_body} bytes) and cannot be verified` : undefined);
      log(REASONS[reason].status, err.kind, { err: err.message });
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ egress: 'wechatpay', err: (err as Error).message }, 'wechatpay egress failed to handle a call');
      if (!res.headersSent) answer(res, 'internal_error', randomUUID());
      else res.destroy();
    });
  });
  const { listen } = first.egress;
  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });

  // Downloads follow the policy in force: the next wait is read after each download.
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (): void => {
    if (closed) return;
    timer = setTimeout(() => void keys.refresh('schedule').then(schedule), current().egress.refresh);
    timer.unref();
  };
  void keys.refresh('start').then(schedule);
  logger.info({ egress: 'wechatpay', listen: `${address.address}:${address.port}`, api_base: first.egress.api_base.origin, mchid: first.egress.mchid }, 'wechatpay egress listening');

  return {
    address,
    async close() {
      closed = true;
      clearTimeout(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await client.close();
    },
  };
}
