// Sends one request to its upstream over a keep-alive undici.Pool, driven through undici's
// dispatch handler API: the generic proxy plugins cost a third of the throughput here, and
// undici's own request() with its body stream most of the rest (see bench/RESULTS.md). The
// gateway owns exactly which headers cross, how errors map to reasons, and what is retried: only
// a request whose connection could not be opened, so that nothing of it reached any upstream, and
// whose body can be sent again, once, on another target (upstream-group.ts picks targets).
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayError, type Reason } from '../errors.js';
import type { UpstreamTarget } from '../snapshot.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardContext } from './forwarding-headers.js';
import { isConnectFailure, TLS_FAILURE, UpstreamGroup, type GroupEvents, type Target } from './upstream-group.js';
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
  /**
   * The upstream request runs to its end (bounded by `timeout`) even when the client goes away:
   * a signed callback, whose answer is kept for WeChat's retry (guards/callback-replay.ts).
   */
  detached?: boolean;
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
    if (e.code && TLS_FAILURE.test(e.code)) return 'upstream_tls_failed';
  }
  return 'upstream_unavailable';
}

/** undici takes the request's TLS name with its options (lib/core/request.js); its types do not say so. */
type WithServername<T> = T & { servername: string };

/** Whether a request body can be sent again: none, held whole, or a stream not read from yet. */
function replayable(body: ForwardRequest['body']): boolean {
  return body === undefined || Buffer.isBuffer(body) || !body.readableDidRead;
}

/**
 * One group of connection pools per upstream (a pool per target), shared by every snapshot whose
 * upstream of that name is configured alike (UpstreamTarget.key): a reload that leaves an
 * upstream alone keeps its connections and its targets' health.
 */
export class UpstreamPools {
  private readonly groups = new Map<string, UpstreamGroup>();

  constructor(private events: GroupEvents = {}) {}

  /** Where target health and traffic are reported from now on (metrics, logs). */
  observe(events: GroupEvents): void {
    this.events = events;
  }

  private group(upstream: UpstreamTarget): UpstreamGroup {
    let group = this.groups.get(upstream.key);
    if (!group) {
      group = new UpstreamGroup(upstream, {
        ejected: (...a) => this.events.ejected?.(...a),
        checked: (...a) => this.events.checked?.(...a),
        recovered: (...a) => this.events.recovered?.(...a),
        dispatched: (...a) => this.events.dispatched?.(...a),
      });
      group.startChecks();
      this.groups.set(upstream.key, group);
    }
    return group;
  }

  /**
   * The upstreams of the snapshot going into force: their groups exist and check health; the
   * groups of upstreams it no longer names stop checking and are let go. They are not closed:
   * a request that arrived under the old snapshot may still be on its way to one. Their idle
   * connections close after the keep-alive timeout, and nothing then holds them.
   */
  use(upstreams: Iterable<UpstreamTarget>): void {
    const keep = new Set<string>();
    for (const u of upstreams) {
      this.group(u);
      keep.add(u.key);
    }
    for (const [key, group] of this.groups) {
      if (keep.has(key)) continue;
      group.stopChecks();
      this.groups.delete(key);
    }
  }

  /**
   * Runs one request on a target: `send` dispatches it and must call `ended` once the upstream is
   * done with it (the slot is then free). A connection that could not be opened is tried once
   * more on another target when `canRetry`.
   */
  private onTarget(
    upstream: UpstreamTarget,
    gone: () => boolean,
    canRetry: () => boolean,
    send: (target: Target, ended: (err: Error | null) => boolean) => void,
    failed: (err: Error) => void,
  ): void {
    const group = this.group(upstream);
    const attempt = (exclude: Target | undefined, first: Error | undefined): void => {
      group.acquire(exclude, gone, (got) => {
        if (got instanceof Error) {
          // A retry with no other target up fails as the first attempt did.
          failed(gone() ? new ClientGone() : first && got.reason === 'upstream_down' ? first : got);
          return;
        }
        if (gone()) {
          group.release(got);
          failed(new ClientGone());
          return;
        }
        let released = false;
        send(got, (err) => {
          if (!released) {
            released = true;
            group.release(got);
          }
          if (!err || first || !isConnectFailure(err) || !canRetry() || gone()) return false;
          attempt(got, err);
          return true;
        });
      });
    };
    attempt(undefined, undefined);
  }

  private dispatch(upstream: UpstreamTarget, req: ForwardRequest, handler: ClientBoundHandler): void {
    const headers = upstreamRequestHeaders(req.headers, req.context);
    // The normal form upstreamRequestHeaders() vetted for X-Forwarded-Host, never the client's text.
    if (upstream.config.preserve_host && typeof headers['x-forwarded-host'] === 'string') headers['host'] = headers['x-forwarded-host'];
    this.onTarget(
      upstream,
      () => handler.gone,
      () => replayable(req.body),
      (target, ended) => {
        const options: WithServername<Dispatcher.DispatchOptions> = {
          path: req.path,
          method: req.method as Dispatcher.HttpMethod,
          headers,
          body: req.body ?? null,
          headersTimeout: req.timeout,
          bodyTimeout: req.timeout,
          servername: target.servername,
        };
        target.pool.dispatch(options, new SlotHandler(handler, target, ended));
      },
      (err) => handler.fail(err),
    );
  }

  /**
   * Forwards a request whose answer the gateway must see before the client does: a body of a
   * declared length up to `collectUpTo` bytes arrives whole, anything else as a stream that
   * holds the upstream back while unread.
   */
  fetch(upstream: UpstreamTarget, req: ForwardRequest, res: ServerResponse, collectUpTo: number, done: (err: Error | null, answer?: ForwardResponse) => void): void {
    this.dispatch(upstream, req, new AnswerCollector(res, req.context, collectUpTo, done, req.detached === true));
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
    type Answer = { statusCode: number; headers: Record<string, string | string[] | undefined>; body: Buffer };
    const read = async (target: Target): Promise<Answer> => {
      const options: WithServername<Dispatcher.RequestOptions> = {
        path: req.path,
        method: 'POST',
        headers: { ...req.headers, 'content-length': String(req.body.length) },
        body: req.body,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        servername: target.servername,
      };
      const res = await target.pool.request(options);
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
    };
    try {
      return await new Promise<Answer>((resolve, reject) =>
        this.onTarget(
          upstream,
          () => false,
          () => true,
          (target, ended) =>
            read(target).then(
              (answer) => {
                ended(null);
                resolve(answer);
              },
              (err: Error) => {
                if (!ended(err)) reject(target.explain(err));
              },
            ),
          reject,
        ),
      );
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

  /** Every target of the upstreams in force, and whether it takes requests now. */
  *states(): Iterable<{ upstream: string; target: string; up: boolean }> {
    const now = Date.now();
    for (const group of this.groups.values()) {
      for (const t of group.targets) yield { upstream: group.upstream.name, target: t.origin, up: t.up(now) };
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.groups.values()].map((g) => g.close()));
    this.groups.clear();
  }
}

/**
 * Between undici and the gateway's handler: frees the request's slot when the upstream is done
 * with it, and swallows a connection failure that is being retried on another target.
 */
class SlotHandler implements Dispatcher.DispatchHandler {
  private started = false;

  constructor(
    private readonly inner: ClientBoundHandler,
    private readonly target: Target,
    /** Returns true when the failure is retried, so the inner handler must not see it. */
    private readonly ended: (err: Error | null) => boolean,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.inner.onRequestStart(controller);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode >= 200) this.started = true;
    this.inner.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.inner.onResponseData(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.ended(null);
    this.inner.onResponseEnd(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    if (this.ended(this.started ? null : err)) return;
    this.inner.onResponseError(controller, this.target.explain(err));
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

/** What both undici handlers share: the upstream request ends when its client goes away, unless detached. */
abstract class ClientBoundHandler {
  private controller: Dispatcher.DispatchController | undefined;
  protected finished = false;

  /** Whether the client went before the upstream answered: a request still waiting for a slot is dropped. */
  get gone(): boolean {
    return !this.detached && this.res.destroyed && !this.finished;
  }

  /** The request failed before it reached the upstream (no slot, no target up, shutting down). */
  abstract fail(err: Error): void;
  abstract onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void;
  abstract onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void;
  abstract onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void;
  abstract onResponseError(controller: Dispatcher.DispatchController, err: Error): void;

  constructor(
    protected readonly res: ServerResponse,
    private readonly detached = false,
  ) {
    if (detached) return;
    // A client that hangs up before the answer should not keep an upstream request running.
    res.once('close', () => {
      if (!this.finished) this.controller?.abort(new ClientGone());
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (!this.detached && this.res.destroyed) controller.abort(new ClientGone());
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

  fail(err: Error): void {
    this.finished = true;
    this.done(err, false);
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
    detached: boolean,
  ) {
    super(res, detached);
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

  fail(err: Error): void {
    this.finished = true;
    this.done(err);
  }
}

/** Whether an upstream request ended because the client had gone: nothing is left to answer. */
export function clientGone(err: unknown): boolean {
  return err instanceof ClientGone;
}
