// An HTTP/2 client beside https-client.ts: the same request options and the same answer, so an
// integration test runs over both protocols by looping over PROTOCOLS. Like the HTTP/1.1 client
// it trusts only the test's root CA and opens one connection per request.
//
// What HTTP/1.1 spells in headers HTTP/2 spells in framing: `host` is sent as `:authority` (as
// browsers do), `transfer-encoding: chunked` as a body without Content-Length, and the other
// connection-specific headers, which HTTP/2 forbids, are not sent at all.
import { connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import { httpsRequest, type ClientResponse, type RequestOptions } from './https-client.js';

const NOT_SENT = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

/** Opens an HTTP/2 connection to the gateway; the caller closes it. */
export function h2Connect(port: number, ca: string | Buffer, servername = 'localhost', localAddress?: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${port}`, { ca, servername, ...(localAddress !== undefined && { localAddress }) });
    session.once('connect', () => {
      session.off('error', reject);
      resolve(session);
    });
    session.once('error', reject);
  });
}

/** One request on an open session, answered whole. */
export function h2Exchange(session: ClientHttp2Session, opts: RequestOptions = {}): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const given = opts.headers ?? {};
    const headers: OutgoingHttpHeaders = {
      ':method': opts.method ?? 'GET',
      ':path': opts.path ?? '/',
      ':authority': String(given['host'] ?? 'localhost'),
    };
    const chunked = given['transfer-encoding'] !== undefined;
    for (const [name, value] of Object.entries(given)) if (!NOT_SENT.has(name.toLowerCase()) && value !== undefined) headers[name.toLowerCase()] = value;
    if (opts.body !== undefined && !chunked && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    const stream = session.request(headers, { endStream: opts.body === undefined });
    stream.setTimeout(opts.timeoutMs ?? 10_000, () => {
      reject(new Error('client timeout'));
      stream.close();
    });
    let status = 0;
    let answered: IncomingHttpHeaders = {};
    stream.once('response', (h) => {
      status = Number(h[':status']);
      const { ':status': _s, ...rest } = h;
      answered = rest as IncomingHttpHeaders;
    });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => {
      // A stream cut before its answer ends too; the 'close' below says so.
      if (status === 0) return;
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ status, headers: answered, text, json: () => JSON.parse(text) });
    });
    stream.once('close', () => {
      if (status === 0) reject(new Error(`stream closed before an answer (RST_STREAM code ${stream.rstCode})`));
      // Headers came, the body was cut: not an answer either.
      else if (!stream.readableEnded) reject(new Error(`stream cut mid-answer (RST_STREAM code ${stream.rstCode})`));
    });
    stream.once('error', reject);
    if (opts.body !== undefined) stream.end(opts.body);
  });
}

/** The HTTP/2 twin of httpsRequest: one connection, one request. */
export async function h2Request(port: number, ca: string | Buffer, opts: RequestOptions = {}): Promise<ClientResponse> {
  const session = await h2Connect(port, ca, opts.servername, opts.localAddress);
  try {
    return await h2Exchange(session, opts);
  } finally {
    session.close();
  }
}

/** An answer as bytes, with `error` set when the stream broke before the body ended. */
export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  error?: Error;
}

/** One GET-like request over its own HTTP/2 connection, answered as the exact bytes received (nothing decoded). */
export async function h2Raw(port: number, ca: string | Buffer, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders } = {}): Promise<RawAnswer> {
  const session = await h2Connect(port, ca);
  session.on('error', () => {});
  try {
    return await new Promise<RawAnswer>((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ':method': opts.method ?? 'GET', ':path': path, ':authority': 'localhost' };
      for (const [name, value] of Object.entries(opts.headers ?? {})) if (!NOT_SENT.has(name.toLowerCase()) && value !== undefined) headers[name.toLowerCase()] = value;
      const stream = session.request(headers);
      stream.setTimeout(20_000, () => stream.destroy(new Error('client timeout')));
      let status = 0;
      let answered: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (error?: Error): void => {
        if (done) return;
        done = true;
        if (status === 0) reject(error ?? new Error('no answer'));
        else resolve({ status, headers: answered, body: Buffer.concat(chunks), ...(error && { error }) });
      };
      stream.once('response', (h) => {
        status = Number(h[':status']);
        const { ':status': _s, ...rest } = h;
        answered = rest as IncomingHttpHeaders;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.once('end', () => finish(stream.rstCode ? new Error(`RST_STREAM ${stream.rstCode}`) : undefined));
      stream.once('error', (err) => finish(err));
      stream.once('close', () => finish(stream.rstCode ? new Error(`RST_STREAM ${stream.rstCode}`) : undefined));
    });
  } finally {
    session.close();
  }
}

/**
 * `request(url, { method, headers, body })` over HTTP/2 for a full URL; the URL's host is the
 * `:authority` unless `headers.host` says otherwise.
 */
export function h2Fetch(url: string, ca: string | Buffer, opts: Omit<RequestOptions, 'path'> = {}): Promise<ClientResponse> {
  const u = new URL(url);
  return h2Request(Number(u.port || 443), ca, { ...opts, path: u.pathname + u.search, headers: { host: u.host, ...opts.headers } });
}

export type Protocol = {
  /** For test names: `HTTP/1.1` or `HTTP/2`. */
  readonly name: 'HTTP/1.1' | 'HTTP/2';
  readonly h2: boolean;
  readonly request: (port: number, ca: string | Buffer, opts?: RequestOptions) => Promise<ClientResponse>;
};

/** What a test loops over to run each case over both protocols the HTTPS listener speaks. */
export const PROTOCOLS: readonly Protocol[] = [
  { name: 'HTTP/1.1', h2: false, request: httpsRequest },
  { name: 'HTTP/2', h2: true, request: h2Request },
];
