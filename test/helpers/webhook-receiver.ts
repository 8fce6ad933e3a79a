// A local webhook on a free port that records every request (path, query, headers, body) and
// answers by a script: a status and body, or `hang` (read the request, never answer).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { waitUntil } from './wait.js';

export type Reply = { status: number; body?: string } | 'hang';

export interface Received {
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  json: Record<string, unknown>;
}

export interface WebhookReceiver {
  url: string;
  received: Received[];
  /** Resolves once `n` requests have arrived. */
  waitFor(n: number): Promise<Received[]>;
  close(): Promise<void>;
}

/** `replies[i]` answers the i-th request; past the end, the last one repeats (default 200). */
export async function startReceiver(replies: Reply[] = [], tls?: { key: string; cert: string }): Promise<WebhookReceiver> {
  const received: Received[] = [];
  const wake = new Set<() => void>();
  const handler = (req: IncomingMessage, res: import('node:http').ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const url = new URL(req.url ?? '/', 'http://x');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        // recorded as text only
      }
      const reply = replies[received.length] ?? replies.at(-1) ?? { status: 200 };
      received.push({ path: url.pathname, query: url.searchParams, headers: req.headers, body, json });
      for (const w of wake) w();
      if (reply === 'hang') return;
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body ?? '{"errcode":0,"errmsg":"ok"}');
    });
  };
  const server: Server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    received,
    waitFor: (n) => waitUntil(() => (received.length >= n ? received : undefined), `${n} webhook request(s)`, { wake, describe: () => `${received.length} so far` }),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
