// Sends one request to its upstream over a keep-alive undici.Pool, driven through undici's
// dispatch handler API: the generic proxy plugins cost a third of the throughput here, and
// undici's own request() with its body stream most of the rest (see bench/RESULTS.md). The
// gateway owns exactly which headers cross, how errors map to reasons, and that nothing is ever
// retried.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { GatewayError, type Reason } from '../errors.js';
import type { UpstreamTarget } from '../snapshot.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardContext } from './forwarding-headers.js';
import { awaitDrain } from './write-stall.js';

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
}

/** An upstream answer handed to the gateway before it goes to the client (to be masked or sealed). */
export interface ForwardResponse {
  statusCode: number;
  /** As the client will get them (hop-by-hop and stripped headers gone, the gateway's added). */
  headers: Record<string, string | string[] | undefined>;
  /** The whole body when it was small enough to collect, else the body as it streams. */
  body: Buffer | Readable;
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

  private dispatch(upstream: UpstreamTarget, req: ForwardRequest, handler: Dispatcher.DispatchHandler): void {
    // An idempotent method is never retried by undici unless asked; nothing here asks.
    this.pool(upstream).dispatch(
      {
        path: req.path,
        method: req.method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(req.headers, req.context),
        body: req.body ?? null,
        headersTimeout: req.timeout,
        bodyTimeout: req.timeout,
      },
      handler,
    );
  }

  /**
   * Forwards a request whose answer the gateway must see before the client does: a body of a
   * declared length up to `collectUpTo` bytes arrives whole, anything else as a stream that
   * holds the upstream back while unread.
   */
  fetch(upstream: UpstreamTarget, req: ForwardRequest, res: ServerResponse, collectUpTo: number, done: (err: Error | null, answer?: ForwardResponse) => void): void {
    this.dispatch(upstream, req, new AnswerCollector(res, req.context, collectUpTo, done));
  }

  /**
   * A request the gateway makes itself (the login's call to the backend): buffered both ways,
   * bounded by `maxAnswer` bytes. A transport failure resolves to the reason the client will be
   * told, like a forwarded request's.
   */
  async call(
    upstream: UpstreamTarget,
    req: { path: string; headers: Record<string, string>; body: Buffer },
    timeout: number,
    maxAnswer = 1024 * 1024,
  ): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; body: Buffer } | { failed: Reason }> {
    try {
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
    } catch (err) {
      return { failed: forwardErrorReason(err) };
    }
  }

  /**
   * Forwards a request whose answer goes to the client as it is (after header hygiene): each
   * chunk the upstream sends is written straight to `res`, with the upstream paused while the
   * client's socket is full. No stream object stands in between, which is most of what the
   * generic request() path costs. `done` reports how it ended: `answered` once the status line
   * went out, so that an error afterwards can only cut the connection.
   */
  stream(upstream: UpstreamTarget, req: ForwardRequest, res: ServerResponse, done: (err: Error | null, answered: boolean) => void): void {
    this.dispatch(upstream, req, new AnswerWriter(res, req.context, done));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}

/** Thrown into the upstream request when the client went away before it was answered. */
class ClientGone extends Error {
  constructor() {
    super('the client closed the connection');
    this.name = 'ClientGone';
  }
}

/** Bytes of an answer held for a slow client before the upstream is paused. */
const WRITE_AHEAD = 64 * 1024;

/** What both undici handlers share: the upstream request ends when its client goes away. */
abstract class ClientBoundHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  protected finished = false;

  constructor(protected readonly res: ServerResponse) {
    // A client that hangs up before the answer should not keep an upstream request running.
    res.once('close', () => {
      if (!this.finished) this.controller?.abort(new ClientGone());
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new ClientGone());
  }
}

/** The undici handler behind UpstreamPools.stream(): upstream answer -> client response. */
class AnswerWriter extends ClientBoundHandler {
  private answered = false;

  constructor(
    res: ServerResponse,
    private readonly context: ForwardContext,
    private readonly done: (err: Error | null, answered: boolean) => void,
  ) {
    super(res);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // Interim answers (100 Continue, 103 Early Hints) are the upstream's to the gateway.
    if (statusCode < 200) return;
    this.answered = true;
    if (this.context.tally) this.context.tally.upstreamStatus = statusCode;
    this.res.writeHead(statusCode, clientResponseHeaders(headers, this.context));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // Reading on while the client's socket still flushes keeps both sides busy; pausing at the
    // socket's own 16 KB mark made every chunk wait for the previous one (a tenth of the speed).
    // A slow client costs at most WRITE_AHEAD plus one chunk of memory.
    if (this.context.tally) this.context.tally.bytesOut += chunk.length;
    if (!this.res.write(chunk) && this.res.writableLength > WRITE_AHEAD && !controller.paused) {
      controller.pause();
      awaitDrain(this.res, this.context.sendTimeout, () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.finished = true;
    this.res.end();
    this.done(null, true);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.finished = true;
    this.done(err, this.answered);
  }
}

/** The undici handler behind UpstreamPools.fetch(): upstream answer -> the gateway, whole or streamed. */
class AnswerCollector extends ClientBoundHandler {
  private statusCode = 0;
  private headers: ForwardResponse['headers'] = {};
  /** Collecting: the chunks so far; streaming: undefined, and `stream` carries them. */
  private chunks: Buffer[] | undefined;
  private stream: Readable | undefined;

  constructor(
    res: ServerResponse,
    private readonly context: ForwardContext,
    private readonly collectUpTo: number,
    private readonly done: (err: Error | null, answer?: ForwardResponse) => void,
  ) {
    super(res);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return;
    this.statusCode = statusCode;
    if (this.context.tally) this.context.tally.upstreamStatus = statusCode;
    this.headers = clientResponseHeaders(headers, this.context);
    const length = Number(headers['content-length']);
    if (length <= this.collectUpTo) {
      this.chunks = [];
      return;
    }
    // 64 KB buffered ahead keeps the upstream and the masker both busy (16 KB halved the speed).
    this.stream = new Readable({ highWaterMark: 64 * 1024, read: () => controller.resume() });
    this.done(null, { statusCode, headers: this.headers, body: this.stream });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.chunks) this.chunks.push(chunk);
    else if (!this.stream!.push(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.finished = true;
    if (this.stream) {
      this.stream.push(null);
      return;
    }
    const chunks = this.chunks ?? [];
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    this.done(null, { statusCode: this.statusCode, headers: this.headers, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.finished = true;
    if (this.stream) this.stream.destroy(err);
    else this.done(err);
  }
}

/** Whether an upstream request ended because the client had gone: nothing is left to answer. */
export function clientGone(err: unknown): boolean {
  return err instanceof ClientGone;
}
