// A real HTTP upstream for tests: it records every request it receives, so a test can assert
// what reached the backend and, as importantly, what never did.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;

export interface TestUpstream {
  url: string;
  port: number;
  received: ReceivedRequest[];
  server: Server;
  close(): Promise<void>;
}

/** Echoes what it received as JSON unless a handler answers instead. */
export async function startUpstream(handler?: UpstreamHandler): Promise<TestUpstream> {
  const received: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const record = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      received.push(record);
      if (handler) {
        Promise.resolve(handler(req, res, body)).catch((err: unknown) => res.destroy(err as Error));
        return;
      }
      const text = JSON.stringify({ method: record.method, url: record.url, headers: record.headers, body: body.toString() });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
