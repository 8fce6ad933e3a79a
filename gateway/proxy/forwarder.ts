// Streams one request to its upstream over a keep-alive undici.Pool and the answer back through
// Fastify's reply. Written against undici directly because the generic proxy plugins cost a
// third of the throughput here (see bench/RESULTS.md), and because the gateway needs to own
// exactly which headers cross, how errors map to reasons, and that nothing is ever retried.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { GatewayError, type Reason } from '../errors.js';
import type { UpstreamTarget } from '../snapshot.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardContext } from './forwarding-headers.js';

export interface ForwardRequest {
  method: string;
  /** Path and query as the upstream must see them. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The request body: streamed, replaced by the gateway (a decrypted callback), or none. */
  body: Readable | Buffer | undefined;
  /** Milliseconds to wait for the response headers, and between body chunks. */
  timeout: number;
  context: ForwardContext;
  /** Aborted when the client goes away before the upstream has answered. */
  signal: AbortSignal;
}

export interface ForwardResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

/** Why forwarding failed, as the client will be told. */
export function forwardErrorReason(err: unknown): Reason {
  for (let e = err as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e instanceof GatewayError) return e.reason;
    switch (e.code) {
      case 'UND_ERR_HEADERS_TIMEOUT':
      case 'UND_ERR_BODY_TIMEOUT':
      case 'UND_ERR_CONNECT_TIMEOUT':
        return 'upstream_timeout';
    }
  }
  return 'upstream_unavailable';
}

/** One connection pool per upstream origin, shared by every snapshot that names it. */
export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();

  private pool(upstream: UpstreamTarget): Pool {
    let pool = this.pools.get(upstream.origin);
    if (!pool) {
      pool = new Pool(upstream.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });
      this.pools.set(upstream.origin, pool);
    }
    return pool;
  }

  forward(upstream: UpstreamTarget, req: ForwardRequest, done: (err: Error | null, res?: ForwardResponse) => void): void {
    const method = req.method as Dispatcher.HttpMethod;
    const headers = upstreamRequestHeaders(req.headers, req.context);
    // An idempotent method is never retried by undici unless asked; nothing here asks.
    this.pool(upstream).request(
      {
        path: req.path,
        method,
        headers,
        body: req.body ?? null,
        headersTimeout: req.timeout,
        bodyTimeout: req.timeout,
        signal: req.signal,
      },
      (err, data) => {
        if (err) return done(err);
        done(null, {
          statusCode: data.statusCode,
          headers: clientResponseHeaders(data.headers, req.context),
          body: data.body,
        });
      },
    );
  }

  /**
   * A request the gateway makes itself (the login's call to the backend): buffered both ways,
   * bounded by `maxAnswer` bytes.
   */
  async call(
    upstream: UpstreamTarget,
    req: { path: string; headers: Record<string, string>; body: Buffer },
    timeout: number,
    maxAnswer = 1024 * 1024,
  ): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    const res = await this.pool(upstream).request({
      path: req.path,
      method: 'POST',
      headers: { ...req.headers, 'content-length': String(req.body.length) },
      body: req.body,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxAnswer) {
        res.body.destroy();
        throw new Error(`the upstream answer is larger than ${maxAnswer} bytes`);
      }
      chunks.push(chunk);
    }
    return { statusCode: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}
