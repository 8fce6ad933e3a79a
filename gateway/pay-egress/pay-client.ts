// One signed call to the Pay API: Authorization made here with the merchant key, over a
// keep-alive pool per Pay origin, under one deadline. Plain data in and out; whether an answer
// may reach the backend is decided by the verifier.
import { Pool } from 'undici';
import type { KeyObject } from 'node:crypto';
import type { Readable } from 'node:stream';
import { payAuthorization, payNonce } from '../wechat/pay-sign.js';

/** Pay refuses a request without a User-Agent; it names the caller, as its SDKs do. */
export const USER_AGENT = `wxgw-pay-egress (node/${process.versions.node})`;

export interface Merchant {
  mchid: string;
  serial: string;
  key: KeyObject;
}

export interface PayCall {
  method: string;
  /** Path and query under the Pay API base, e.g. /v3/certificates. */
  url: string;
  body: Buffer;
  /** What the signature covers when it is not the body: a multipart upload's `meta` part. */
  signed?: Buffer;
  /** Headers beside Authorization, Accept and User-Agent (lower-case names). */
  headers: Record<string, string>;
}

export interface PayAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type PayFailure = 'timeout' | 'unavailable' | 'too_large';

export class PayCallError extends Error {
  override readonly name = 'PayCallError';
  constructor(
    readonly kind: PayFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class PayClient {
  private readonly pools = new Map<string, Pool>();

  /** `base` may carry a path (a forward proxy, a test fake): it is part of what is signed. */
  async call(base: URL, merchant: Merchant, call: PayCall, opts: { timeout: number; maxAnswer: number; now: number }): Promise<PayAnswer> {
    const { res, done } = await this.open(base, merchant, call, opts);
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > opts.maxAnswer) {
          res.body.destroy();
          throw new PayCallError('too_large', `WeChat Pay answered with more than ${opts.maxAnswer} bytes`);
        }
        chunks.push(chunk);
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks, size) };
    } catch (err) {
      throw failure(err, done.signal, opts.timeout);
    } finally {
      done.clear();
    }
  }

  /** The answer's head, its body left to stream: for downloads Pay does not sign. The deadline covers the head. */
  async stream(base: URL, merchant: Merchant, call: PayCall, opts: { timeout: number; now: number }): Promise<{ status: number; headers: PayAnswer['headers']; body: Readable }> {
    const { res, done } = await this.open(base, merchant, call, opts);
    done.clear();
    return { status: res.statusCode, headers: res.headers, body: res.body };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => (p.closed ? undefined : p.close())));
    this.pools.clear();
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: 16, keepAliveTimeout: 30_000 });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  private async open(base: URL, merchant: Merchant, call: PayCall, opts: { timeout: number; now: number }) {
    const path = `${base.pathname.replace(/\/+$/, '')}${call.url}`;
    const authorization = payAuthorization({
      mchid: merchant.mchid,
      serial: merchant.serial,
      key: merchant.key,
      method: call.method,
      url: path,
      timestamp: Math.floor(opts.now / 1000),
      nonce: payNonce(),
      body: call.signed ?? call.body,
    });
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), opts.timeout);
    const done = { signal: deadline.signal, clear: () => clearTimeout(timer) };
    try {
      const res = await this.pool(base.origin).request({
        method: call.method as 'GET',
        path,
        headers: { ...call.headers, authorization, accept: 'application/json', 'user-agent': USER_AGENT },
        body: call.body.length > 0 || call.method !== 'GET' ? call.body : null,
        signal: deadline.signal,
      });
      return { res, done };
    } catch (err) {
      done.clear();
      throw failure(err, deadline.signal, opts.timeout);
    }
  }
}

function failure(err: unknown, signal: AbortSignal, timeout: number): PayCallError {
  if (err instanceof PayCallError) return err;
  if (signal.aborted) return new PayCallError('timeout', `WeChat Pay did not answer within ${timeout} ms`, { cause: err });
  return new PayCallError('unavailable', `cannot reach WeChat Pay: ${(err as Error).message}`, { cause: err });
}
