// A real WebSocket backend (a `ws` server) that echoes and records every handshake it receives,
// and a real `ws` client that connects through the gateway over wss and reports a refused
// handshake as the status and JSON body the gateway answered.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

export interface WsUpstream {
  url: string;
  /** The headers of every WebSocket handshake that reached the backend. */
  upgrades: { url: string; headers: IncomingHttpHeaders }[];
  /** Plain HTTP requests that reached the backend. */
  requests: { url: string; headers: IncomingHttpHeaders }[];
  /** Every close the backend saw, with its code. */
  closes: { url: string; code: number }[];
  /** The backend's side of every open session. */
  sockets: Set<WebSocket>;
  /** Called whenever something above changed. */
  wake: Set<() => void>;
  server: Server;
  close(): Promise<void>;
}

/** Echoes every message back as it came (text as text, binary as binary); selects the first subprotocol offered. */
export async function startWsUpstream(): Promise<WsUpstream> {
  const wake = new Set<() => void>();
  const changed = (): void => {
    for (const w of wake) w();
  };
  const upstream: Omit<WsUpstream, 'url' | 'close'> = { upgrades: [], requests: [], closes: [], sockets: new Set(), wake, server: undefined as unknown as Server };
  const server = createServer((req, res) => {
    upstream.requests.push({ url: req.url ?? '', headers: req.headers });
    changed();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"plain":true}');
  });
  // A path with `/refused` is answered 403 instead of 101: a backend turning a handshake down.
  const wss = new WebSocketServer({
    server,
    handleProtocols: (protocols) => [...protocols][0] ?? false,
    verifyClient: (info, done) => done(!(info.req.url ?? '').includes('/refused'), 403),
  });
  wss.on('connection', (socket, req) => {
    const url = req.url ?? '';
    upstream.upgrades.push({ url, headers: req.headers });
    upstream.sockets.add(socket);
    changed();
    socket.on('message', (data: Buffer, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on('close', (code) => {
      upstream.sockets.delete(socket);
      upstream.closes.push({ url, code });
      changed();
    });
  });
  upstream.server = server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    ...upstream,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of upstream.sockets) s.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type Handshake =
  | { kind: 'open'; ws: WebSocket; headers: IncomingHttpHeaders }
  | { kind: 'refused'; status: number; reason: string | undefined; headers: IncomingHttpHeaders; body: string };

export interface ConnectOptions {
  headers?: Record<string, string>;
  protocols?: string[];
  origin?: string;
  /** ws:// to a plain listener (`server.https: off`) instead of wss://. */
  plain?: boolean;
}

/** Opens wss://localhost:port/path through the gateway, trusting only the test's root (or ws:// with `plain`). */
export function connect(port: number, ca: Buffer, path: string, opts: ConnectOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    // `ws` hands TLS options such as servername on to tls.connect; its types leave them out.
    const tls = { ca, servername: 'localhost' } as WebSocket.ClientOptions;
    const ws = new WebSocket(`${opts.plain ? 'ws' : 'wss'}://127.0.0.1:${port}${path}`, opts.protocols ?? [], {
      ...tls,
      headers: { host: 'localhost', ...opts.headers },
      ...(opts.origin !== undefined && { origin: opts.origin }),
      perMessageDeflate: false,
    });
    let headers: IncomingHttpHeaders = {};
    ws.once('upgrade', (res) => (headers = res.headers));
    ws.once('open', () => resolve({ kind: 'open', ws, headers }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        let reason: string | undefined;
        try {
          reason = (JSON.parse(body) as { error?: { reason?: string } }).error?.reason;
        } catch {
          reason = undefined;
        }
        resolve({ kind: 'refused', status: res.statusCode ?? 0, reason, headers: res.headers, body });
        ws.terminate();
      });
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Resolves with the code and reason of the close `ws` sees; the deadline only turns a hang into a failure. */
export function closed(ws: WebSocket, timeoutMs = 15_000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed'));
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`the WebSocket was not closed within ${timeoutMs} ms`)), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(deadline);
      resolve({ code, reason: reason.toString() });
    });
  });
}

/** Sends one message and resolves with the next one received. */
export function echo(ws: WebSocket, data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => {
    ws.once('message', (message: Buffer, isBinary) => resolve({ data: message, isBinary }));
    ws.send(data);
  });
}
