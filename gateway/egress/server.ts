// The egress listener: plain HTTP on loopback or a pod-local address, where the backend's WeChat
// SDK sends what it would send to https://api.weixin.qq.com. Token calls are answered from wxgw's
// cache; every other call goes through Egress.call. wxgw's own refusals carry both its stable
// `error.reason` and a WeChat-style errcode, so an SDK that reads only errcode still stops.
// With wechat.apps, the call's app is chosen by path prefix or X-WX-App header (apps.ts).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { REASONS, type Reason } from '../errors.js';
import type { Snapshot } from '../snapshot.js';
import { TOKEN_PATHS, errcodeAnswer, tokenAnswer } from '../wechat/access-token.js';
import { appByAppid, selectApp, servedAppids, type EgressApp } from './apps.js';
import { MAX_REQUEST, REPLAY_LIMIT, newRequestId, readLimited, type Egress, type EgressOutcome } from './egress.js';
import { TokenUnavailableError } from './token-cache.js';

/** API paths as WeChat spells them; anything else (dot segments, encodings, `//`) is refused. */
const API_PATH = /^(?:\/[A-Za-z0-9_\-.]+)+\/?$/;
const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

function refuse(res: ServerResponse, requestId: string, reason: Reason, errcode: number, message?: string, retryAfterMs?: number): void {
  const body = JSON.stringify({ errcode, errmsg: message ?? REASONS[reason].message, error: { reason, message: message ?? REASONS[reason].message, request_id: requestId } });
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', 'x-request-id': requestId };
  if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  res.writeHead(REASONS[reason].status, headers).end(body);
}

function weChatAnswer(res: ServerResponse, body: string, requestId: string): void {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', 'x-request-id': requestId }).end(body);
}

/**
 * The request body: buffered when it fits REPLAY_LIMIT (so a call may be repeated), else a stream
 * of what was read and the rest, cut at MAX_REQUEST.
 */
async function requestBody(req: IncomingMessage): Promise<Buffer | Readable | undefined | 'too_large'> {
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > MAX_REQUEST) return 'too_large';
  if (BODYLESS.has(req.method ?? 'GET') && declared === undefined && req.headers['transfer-encoding'] === undefined) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const next = await it.next();
    if (next.done) return Buffer.concat(chunks);
    size += next.value.length;
    chunks.push(next.value);
    if (size > REPLAY_LIMIT) break;
  }
  let total = size;
  async function* rest(): AsyncGenerator<Buffer> {
    yield* chunks;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      total += next.value.length;
      if (total > MAX_REQUEST) throw new RangeError(`request body larger than ${MAX_REQUEST} bytes`);
      yield next.value;
    }
  }
  return Readable.from(rest(), { objectMode: false });
}

/**
 * A token call answered from the cache. The app is the one the header or prefix chose; without
 * either, the appid the call names (query or stable_token body), else the default app.
 */
async function answerToken(egress: Egress, source: { readonly current: Snapshot }, selection: { app: EgressApp; chosen: boolean }, req: IncomingMessage, url: URL, path: string, res: ServerResponse, requestId: string, now: () => number): Promise<void> {
  let appid = url.searchParams.get('appid') ?? undefined;
  if (path === '/cgi-bin/stable_token') {
    try {
      const body = JSON.parse((await readLimited(req, 16 * 1024)) || '{}') as Record<string, unknown>;
      if (typeof body.appid === 'string') appid = body.appid;
    } catch {
      weChatAnswer(res, errcodeAnswer(47001, 'data format error: stable_token takes a JSON object'), requestId);
      return;
    }
  }
  // The backend's secret (if it still sends one) is ignored: the token is wxgw's, for its own app.
  let app: EgressApp | undefined = selection.app;
  if (appid !== undefined && appid !== app.appid) app = selection.chosen ? undefined : appByAppid(source.current.policy, appid);
  if (!app) {
    const served = selection.chosen ? [selection.app.appid] : servedAppids(source.current.policy);
    weChatAnswer(res, errcodeAnswer(40013, `invalid appid: this egress serves ${served.join(', ')}`), requestId);
    return;
  }
  try {
    weChatAnswer(res, tokenAnswer(await egress.token(app), now()), requestId);
  } catch (err) {
    if (!(err instanceof TokenUnavailableError)) throw err;
    egress.logger.warn({ request_id: requestId, appid: app.appid, err: err.message }, 'no access_token to answer the backend with');
    refuse(res, requestId, 'wx_token_unavailable', -1, undefined, 1000);
  }
}

function send(res: ServerResponse, outcome: EgressOutcome, requestId: string): void {
  if (outcome.kind === 'refused') {
    refuse(res, requestId, outcome.reason, outcome.errcode, outcome.message, outcome.retryAfterMs);
    return;
  }
  res.writeHead(outcome.statusCode, { ...outcome.headers, 'x-request-id': requestId });
  if (Buffer.isBuffer(outcome.body)) {
    res.end(outcome.body);
    return;
  }
  const body = outcome.body;
  body.on('error', () => res.destroy());
  res.on('close', () => body.destroy());
  body.pipe(res);
}

export function createEgressServer(egress: Egress, source: { readonly current: Snapshot }, now: () => number = Date.now): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = newRequestId();
    const url = new URL(req.url ?? '/', 'http://egress.invalid');
    if (!(req.url ?? '').startsWith('/') || !API_PATH.test(url.pathname) || /(^|\/)\.\.?(\/|$)/.test(url.pathname)) {
      refuse(res, requestId, 'path_invalid', 40066, 'the path is not a WeChat API path');
      return;
    }
    const selection = selectApp({ headers: req.headers, path: url.pathname }, source.current.policy);
    if (selection.kind === 'unknown') {
      egress.metrics.refused(url.pathname, 'wx_app_unknown');
      refuse(res, requestId, 'wx_app_unknown', 40013, `${JSON.stringify(selection.name.slice(0, 64))} is not an app of this egress: name one of wechat.apps or its appid (X-WX-App header or /<name>/ path prefix)`);
      return;
    }
    if (selection.kind === 'no_secret') {
      refuse(res, requestId, 'wx_token_unavailable', -1, selection.message);
      return;
    }
    const { app, path } = selection;
    if (selection.overridden !== undefined) {
      egress.logger.warn({ request_id: requestId, appid: app.appid, header: selection.overridden.slice(0, 64) }, 'X-WX-App names another app than the path prefix; the prefix wins');
    }
    if (TOKEN_PATHS.has(path)) {
      await answerToken(egress, source, selection, req, url, path, res, requestId, now);
      return;
    }
    const body = await requestBody(req);
    if (body === 'too_large') {
      refuse(res, requestId, 'body_too_large', 44002, `request bodies are limited to ${MAX_REQUEST} bytes`);
      return;
    }
    const outcome = await egress.call(app, { method: req.method ?? 'GET', path, search: url.searchParams, headers: req.headers, body, requestId });
    send(res, outcome, requestId);
  };
  const server = createServer({ requestTimeout: 120_000, headersTimeout: 10_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      // The backend went away mid-request: nothing to answer, nothing wrong with the gateway.
      if (req.destroyed && !req.complete) {
        res.destroy();
        return;
      }
      egress.logger.error({ err: (err as Error).message }, 'egress request failed inside the gateway');
      if (!res.headersSent) refuse(res, newRequestId(), 'internal_error', -1);
      else res.destroy();
    });
  });
  return server;
}
