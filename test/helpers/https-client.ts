// An HTTPS client that trusts only the test's own root CA, so every request also proves the
// gateway served a chain that verifies.
import { request } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json<T = unknown>(): T;
}

export interface RequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Sent as-is in the request line, unlike a URL object which would normalise it. */
  path?: string;
  servername?: string;
  timeoutMs?: number;
  /** The client's own address (a loopback one: 127.0.0.2 plays a trusted proxy in some tests). */
  localAddress?: string;
}

export function httpsRequest(port: number, ca: string | Buffer, opts: RequestOptions = {}): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        servername: opts.servername ?? 'localhost',
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { host: 'localhost', ...opts.headers },
        ca,
        agent: false,
        timeout: opts.timeoutMs ?? 10_000,
        ...(opts.localAddress !== undefined && { localAddress: opts.localAddress }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}
