// WebSocket upgrades (RFC 6455 over HTTP/1.1): the handshake is a GET, decided like any request
// of its route (routing, header screening, the route's compiled guard chain), plus what only an
// upgrade needs: the route must allow it (`websocket`), a browser's Origin must be one the route's
// CORS allows, and the route must have a session slot free. Only then is the upstream asked; the
// client's handshake is answered once the upstream's 101 came back, with the subprotocol the
// upstream chose.
//
// Both legs are terminated here with `ws` and messages are relayed between them, rather than the
// two raw sockets piped together after the upstream's 101: the gateway must be able to end a
// session itself (idle, max_duration, shutdown) with a close frame to each side at a frame
// boundary, which a byte pipe cannot do without parsing frames anyway, and `ws` checks the
// upstream's handshake (Sec-WebSocket-Accept, the subprotocol) for us. Compression is negotiated on
// neither leg. Each session keeps the snapshot it started with: a reload never cuts it.
//
// The identity token is read where the policy's identity section says (a header or a cookie,
// what wx.connectSocket's `header` option can set), or from a `Sec-WebSocket-Protocol` entry
// `bearer.<token>` (what a browser's WebSocket can set). That entry never reaches the upstream. A
// token in the query string is not read: URLs end up in logs.
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import type { Reason } from '../errors.js';
import type { Answered, GuardInput, Passed, Refused, Verdict } from '../guards/chain.js';
import { screenHeaderNames } from '../guards/header-plan.js';
import { accessLogger, type Logger } from '../observability/logger.js';
import type { Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import type { RouteTarget } from '../snapshot.js';
import type { WebSocketConfig } from '../types/policy.js';
import type { AccessLog } from './access-log.js';
import type { SnapshotSource } from './dispatch.js';
import { upstreamRequestHeaders } from './forwarding-headers.js';
import { errorAnswer, type OwnAnswer } from './own-answer.js';
import { requestState, type RequestState } from './request-state.js';
import { route } from './routing.js';

/** The Sec-WebSocket-Protocol entry that carries an identity token: `bearer.<token>`. */
export const TOKEN_PROTOCOL_PREFIX = 'bearer.';

/** Buffered bytes towards one side past which the other side is no longer read. */
const HIGH_WATER = 1024 * 1024;

const KEY = /^[+/0-9A-Za-z]{22}==$/;
/** An HTTP token (RFC 9110 §5.6.2): what a subprotocol name must be. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The client's handshake headers the gateway's own upstream handshake replaces. */
const HANDSHAKE_HEADERS = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol'];

/** Whether a request asks to become a WebSocket: those go to the `upgrade` event, any other Upgrade is served as plain HTTP. */
export function wantsWebSocket(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.split(',').some((p) => p.trim().toLowerCase() === 'websocket');
}

/** Close codes an endpoint may send (RFC 6455 §7.4); 1005, 1006 and 1015 only ever describe a close. */
function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** A close from one leg sent on to the other: as it came, empty for 1005, else `lost` (the leg vanished). */
function passClose(to: WebSocket, code: number, reason: Buffer, lost: number, why?: string): void {
  if (to.readyState !== WebSocket.OPEN) return;
  if (sendable(code)) to.close(code, reason);
  else if (code === 1005) to.close();
  else to.close(lost, why);
}

type Offered = { ok: true; protocols: string[]; token: string | undefined } | { ok: false; why: string };

/** The client's subprotocols, with the token entry taken out. */
function offeredProtocols(header: string | undefined): Offered {
  const protocols: string[] = [];
  let token: string | undefined;
  if (header === undefined) return { ok: true, protocols, token };
  for (const entry of header.split(',')) {
    const p = entry.trim();
    if (p === '') continue;
    if (!TOKEN.test(p)) return { ok: false, why: `the subprotocol ${JSON.stringify(p)} is not a token` };
    if (!p.startsWith(TOKEN_PROTOCOL_PREFIX)) {
      if (protocols.includes(p)) return { ok: false, why: `the subprotocol ${JSON.stringify(p)} is offered twice` };
      protocols.push(p);
      continue;
    }
    if (token !== undefined) return { ok: false, why: 'more than one bearer. subprotocol entry' };
    token = p.slice(TOKEN_PROTOCOL_PREFIX.length);
  }
  return { ok: true, protocols, token };
}

/** What the guard chain reads the token from: the policy's carrier, with a subprotocol token put where it expects one. */
function headersWithToken(req: IncomingMessage, wx: RequestState, token: string | undefined): GuardInput['headers'] | string {
  if (token === undefined) return req.headers;
  const carrier = wx.snapshot.policy.identity?.token;
  if (!carrier) return req.headers;
  if ('cookie' in carrier) {
    // A second, different cookie of that name makes the token ambiguous, which the verifier refuses.
    const cookie = req.headers.cookie;
    return { ...req.headers, cookie: `${cookie === undefined ? '' : `${cookie}; `}${carrier.cookie}=${token}` };
  }
  const name = carrier.header.toLowerCase();
  if (req.headers[name] !== undefined) return `a token in both ${name} and Sec-WebSocket-Protocol`;
  return { ...req.headers, [name]: name === 'authorization' ? `Bearer ${token}` : token };
}

/** Whether a browser's Origin may open this route's WebSocket: one its CORS allows, or the gateway's own. */
function originAllowed(target: RouteTarget, origin: string | undefined, host: string | undefined): boolean {
  // Only browsers send Origin, and a browser always does: without one there is no page to protect.
  if (origin === undefined) return true;
  if (target.response.cors?.allowOrigin(origin) !== undefined) return true;
  if (host === undefined) return false;
  const own = host.toLowerCase();
  return origin === `https://${own}` || (own.endsWith(':443') && origin === `https://${own.slice(0, -4)}`);
}

function upstreamUrl(target: RouteTarget, dest: string): string {
  return target.upstream.origin.replace(/^http/, 'ws') + dest;
}

function rawAnswer(answer: { status: number; headers: Record<string, string>; body?: string | Buffer }): string {
  let head = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n${answer.body ?? ''}`;
}

export interface WebSocketsOptions {
  source: SnapshotSource;
  logger: Logger;
  decisions: Decisions;
  metrics: Metrics;
  accessLog: AccessLog;
  /** Whether a request may be served at all (plain HTTP not from the trusted balancer may not). */
  servable(req: IncomingMessage, wx: RequestState): boolean;
}

export interface WebSockets {
  /** Takes the server's WebSocket upgrades (see wantsWebSocket); returns the server. */
  attach<S extends Server>(server: S): S;
  /** Closes every open session with 1001 and refuses new ones (shutdown, once the drain delay is over). */
  closeAll(): void;
}

interface Session {
  close(code: number, reason: string, why: string): void;
}

export function createWebSockets(opts: WebSocketsOptions): WebSockets {
  const { source, logger, decisions, metrics, accessLog } = opts;
  const access = accessLogger(logger);
  const sessions = new Set<Session>();
  /** Slots taken per route name: sessions open plus handshakes under way, across snapshots. */
  const slots = new Map<string, number>();
  let closing = false;
  /** The subprotocol the upstream chose, for the client's 101. */
  const chosen = new WeakMap<IncomingMessage, string>();
  /** One `ws` server per message limit in use: `ws` bounds messages per server. */
  const servers = new Map<number, WebSocketServer>();
  const serverFor = (maxMessage: number): WebSocketServer => {
    let wss = servers.get(maxMessage);
    if (wss) return wss;
    wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: maxMessage,
      handleProtocols: (_protocols, req) => chosen.get(req) || false,
    });
    // Its own refusals are left to the gateway, which answers with its JSON error (connect()).
    wss.on('wsClientError', () => undefined);
    wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const wx = requestState(req, source.current);
      headers.push(`${wx.snapshot.policy.server.request_id.header}: ${wx.id}`);
    });
    servers.set(maxMessage, wss);
    return wss;
  };

  const release = (name: string): void => {
    const n = (slots.get(name) ?? 1) - 1;
    if (n <= 0) slots.delete(name);
    else slots.set(name, n);
  };

  const answerRaw = (socket: Duplex, wx: RequestState, answer: OwnAnswer | Answered): void => {
    if (socket.writable) socket.end(rawAnswer(answer));
    else socket.destroy();
    accessLog(wx, 'GET', answer.status, true);
  };

  const refuse = (socket: Duplex, wx: RequestState, reason: Reason, message?: string, headers?: Record<string, string>): void => {
    wx.reason = reason;
    decisions.count(reason);
    answerRaw(socket, wx, errorAnswer(wx, reason, message, headers));
  };

  const opened = (req: IncomingMessage, wx: RequestState, target: RouteTarget, limits: WebSocketConfig, client: WebSocket, upstream: WebSocket): void => {
    const started = performance.now();
    const name = target.name;
    const bytesIn = metrics.websocketBytes.labels(name, 'in');
    const bytesOut = metrics.websocketBytes.labels(name, 'out');
    metrics.websocketsOpen.labels(name).inc();
    let inBytes = 0;
    let outBytes = 0;
    let closedBy: 'client' | 'upstream' | 'gateway' | undefined;
    let why: string | undefined;
    let legsOpen = 2;
    let clientCode: number | undefined;
    let upstreamCode: number | undefined;

    const session: Session = {
      close(code, reason, cause) {
        closedBy ??= 'gateway';
        why ??= cause;
        if (client.readyState === WebSocket.OPEN) client.close(code, reason);
        if (upstream.readyState === WebSocket.OPEN) upstream.close(code, reason);
      },
    };
    sessions.add(session);
    const idle = setTimeout(() => session.close(1000, 'idle timeout', 'idle_timeout'), limits.idle_timeout);
    const total = setTimeout(() => session.close(1000, 'session too long', 'max_duration'), limits.max_duration);
    const touch = (): void => {
      idle.refresh();
    };

    const relay = (from: WebSocket, to: WebSocket, count: (n: number) => void): void => {
      from.on('message', (data: Buffer, isBinary: boolean) => {
        touch();
        count(data.length);
        if (to.readyState !== WebSocket.OPEN) return;
        to.send(data, { binary: isBinary }, () => {
          if (from.isPaused && to.bufferedAmount < HIGH_WATER / 2) from.resume();
        });
        if (to.bufferedAmount > HIGH_WATER) from.pause();
      });
      from.on('ping', touch);
      from.on('pong', touch);
    };
    relay(client, upstream, (n) => {
      inBytes += n;
      bytesIn.inc(n);
    });
    relay(upstream, client, (n) => {
      outBytes += n;
      bytesOut.inc(n);
    });

    const ended = (): void => {
      if (--legsOpen > 0) return;
      clearTimeout(idle);
      clearTimeout(total);
      sessions.delete(session);
      release(name);
      metrics.websocketsOpen.labels(name).dec();
      access.info(
        {
          request_id: wx.id,
          route: name,
          path: wx.path === undefined ? undefined : wx.snapshot.redactor.path(wx.path),
          client_ip: wx.address.client,
          closed_by: closedBy,
          close_code: closedBy === 'upstream' ? upstreamCode : clientCode,
          ...(why !== undefined && { why }),
          bytes_in: inBytes,
          bytes_out: outBytes,
          duration_ms: Math.round(performance.now() - started),
        },
        'websocket session',
      );
    };
    // A close from one side goes on to the other as it came, when it can be sent; a side that
    // vanished without one is reported to the other as going away (client) or failing (upstream).
    client.on('close', (code: number, reason: Buffer) => {
      closedBy ??= 'client';
      clientCode = code;
      passClose(upstream, code, reason, 1001);
      ended();
    });
    upstream.on('close', (code: number, reason: Buffer) => {
      closedBy ??= 'upstream';
      upstreamCode = code;
      passClose(client, code, reason, 1011, 'upstream connection lost');
      ended();
    });
    client.on('error', (err: Error) => logger.debug({ request_id: wx.id, route: name, err }, 'websocket client side failed'));
    upstream.on('error', (err: Error) => logger.warn({ request_id: wx.id, route: name, err }, 'websocket upstream side failed'));
    chosen.delete(req);
  };

  /** The client hung up before its 101: nothing is left to answer. */
  const abandoned = (wx: RequestState, target: RouteTarget): void => {
    release(target.name);
    accessLog(wx, 'GET', 101, false);
  };

  const connect = (req: IncomingMessage, socket: Duplex, head: Buffer, wx: RequestState, target: RouteTarget, dest: string, limits: WebSocketConfig, protocols: string[], passed: Passed): void => {
    // The guards may have taken a while (a token check, the store): the client may be gone.
    if (socket.destroyed) return abandoned(wx, target);
    if (passed.storeBypassed) {
      wx.reason = 'store_unavailable_allowed';
      decisions.count('store_unavailable_allowed');
    }
    const headers = upstreamRequestHeaders(req.headers, {
      id: wx.id,
      idHeader: wx.snapshot.policy.server.request_id.header,
      address: wx.address,
      hasBody: false,
      response: target.response,
      requestRules: target.requestRules,
      allowedOrigin: wx.allowedOrigin,
      reserved: wx.snapshot.reservedHeaders,
      added: Object.keys(passed.added).length > 0 ? passed.added : undefined,
      answerAdded: undefined,
      sendTimeout: wx.snapshot.policy.server.limits.send_timeout,
    });
    for (const name of HANDSHAKE_HEADERS) delete headers[name];
    let settled = false;
    const fail = (reason: Reason, message: string, err?: unknown): void => {
      if (settled) return;
      settled = true;
      release(target.name);
      if (reason !== 'shutting_down') {
        metrics.route(target.name).upstreamError(reason);
        logger.warn({ request_id: wx.id, route: target.name, err }, message);
      }
      refuse(socket, wx, reason, message);
    };
    wx.upstreamStart = performance.now();
    let upstream: WebSocket;
    try {
      upstream = new WebSocket(upstreamUrl(target, dest), protocols, {
        headers: headers as Record<string, string>,
        perMessageDeflate: false,
        handshakeTimeout: target.timeout,
        maxPayload: limits.max_message,
        followRedirects: false,
      });
    } catch (err) {
      // The subprotocols were checked before; only a gateway bug gets here.
      release(target.name);
      logger.error({ request_id: wx.id, err, route: target.name }, 'websocket upstream handshake could not be started');
      return refuse(socket, wx, 'internal_error');
    }
    const clientGone = (): void => {
      if (settled) return;
      settled = true;
      upstream.terminate();
      abandoned(wx, target);
    };
    socket.once('close', clientGone);
    upstream.once('unexpected-response', (_request, response: IncomingMessage) => {
      response.resume();
      fail('upstream_unavailable', `the upstream answered the WebSocket handshake with ${response.statusCode} instead of 101`);
      upstream.terminate();
    });
    upstream.on('error', (err: Error) => {
      fail(/timed out/.test(err.message) ? 'upstream_timeout' : 'upstream_unavailable', 'websocket upstream handshake failed', err);
    });
    upstream.once('open', () => {
      if (settled) return;
      if (closing) {
        upstream.close(1001);
        fail('shutting_down', 'the gateway began shutting down during the WebSocket handshake');
        return;
      }
      settled = true;
      socket.off('close', clientGone);
      wx.upstreamMs = performance.now() - wx.upstreamStart;
      if (upstream.protocol !== '') chosen.set(req, upstream.protocol);
      let upgraded = false;
      serverFor(limits.max_message).handleUpgrade(req, socket, head, (client) => {
        upgraded = true;
        accessLog(wx, 'GET', 101, true);
        opened(req, wx, target, limits, client, upstream);
      });
      // Without a client check handleUpgrade decides at once; it gives up without a call when the
      // client went away meanwhile, or (it checks what the gateway already did) finds the handshake wrong.
      if (!upgraded) {
        upstream.terminate();
        if (!socket.writable) return abandoned(wx, target);
        release(target.name);
        refuse(socket, wx, 'bad_request', 'the WebSocket handshake is malformed');
      }
    });
  };

  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Until `ws` takes the socket, its errors (a reset mid-handshake) are the gateway's to absorb.
    socket.on('error', () => socket.destroy());
    const wx = requestState(req, source.current);
    if (!opts.servable(req, wx)) return refuse(socket, wx, 'https_required');
    if (closing) return refuse(socket, wx, 'shutting_down');
    if (req.method !== 'GET') return refuse(socket, wx, 'bad_request', 'a WebSocket handshake is a GET request');
    if (req.headers.upgrade?.trim().toLowerCase() !== 'websocket') return refuse(socket, wx, 'bad_request', 'Upgrade must name websocket alone');
    const routing = route(req, wx);
    if (routing.kind === 'refuse') return refuse(socket, wx, routing.reason, routing.message, routing.headers);
    const { target, dest } = routing;
    const limits = target.websocket;
    if (!limits) return refuse(socket, wx, 'websocket_not_allowed');
    const odd = screenHeaderNames(req.headers, wx.snapshot.reservedHeaders);
    if (odd) {
      logger.info({ request_id: wx.id, route: target.name, headers: odd.names }, odd.refuse ? 'request refused: header names with "_"' : 'request header names with "_" dropped');
      if (odd.refuse) return refuse(socket, wx, 'header_invalid', `header names other than letters, digits and "-" are refused: ${odd.names.join(', ')}`);
      decisions.count('header_dropped');
    }
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || !KEY.test(key.trim())) return refuse(socket, wx, 'bad_request', 'Sec-WebSocket-Key is missing or malformed');
    if (req.headers['sec-websocket-version'] !== '13') {
      return refuse(socket, wx, 'bad_request', 'only WebSocket version 13 is spoken', { 'sec-websocket-version': '13' });
    }
    if (!originAllowed(target, req.headers.origin, req.headers.host)) return refuse(socket, wx, 'websocket_origin_not_allowed');
    const offered = offeredProtocols(req.headers['sec-websocket-protocol']);
    if (!offered.ok) return refuse(socket, wx, 'bad_request', offered.why);
    const headers = headersWithToken(req, wx, offered.token);
    if (typeof headers === 'string') return refuse(socket, wx, 'token_invalid', headers);
    const taken = slots.get(target.name) ?? 0;
    if (taken >= limits.max_connections) return refuse(socket, wx, 'websocket_limit');
    slots.set(target.name, taken + 1);

    const settled = (verdict: Verdict): void => {
      wx.cors = verdict.cors;
      wx.allowedOrigin = verdict.allowedOrigin;
      if (verdict.kind === 'continue') {
        connect(req, socket, head, wx, target, dest, limits, offered.protocols, verdict);
        return;
      }
      release(target.name);
      if (verdict.kind === 'answer') return answerRaw(socket, wx, verdict);
      const refusal: Refused = verdict;
      if (refusal.detail !== undefined) logger.warn({ request_id: wx.id, route: target.name, reason: refusal.reason, detail: refusal.detail }, 'request refused');
      refuse(socket, wx, refusal.reason, refusal.message, refusal.headers);
    };
    const failed = (err: unknown): void => {
      release(target.name);
      logger.error({ request_id: wx.id, err, route: target.name }, 'websocket handshake failed inside the gateway');
      refuse(socket, wx, 'internal_error');
    };
    const input: GuardInput = { method: 'GET', url: req.url ?? '/', headers, client: wx.address.client, preflight: false, readBody: NO_BODY };
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = target.chain.run(input);
    } catch (err) {
      return failed(err);
    }
    if (verdict instanceof Promise) verdict.then(settled, failed);
    else settled(verdict);
  };

  return {
    attach(server) {
      server.on('upgrade', upgrade);
      return server;
    },
    closeAll() {
      closing = true;
      for (const s of sessions) s.close(1001, 'gateway shutting down', 'shutdown');
    },
  };
}

const EMPTY = Buffer.alloc(0);

/** An upgrade has no body (a callback route cannot take upgrades: policy/websocket-checks.ts). */
function NO_BODY(): Promise<Buffer> {
  return Promise.resolve(EMPTY);
}
