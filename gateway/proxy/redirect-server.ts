// The plain-HTTP listener: it never proxies. Every request is answered with a 308 to the same
// path on HTTPS (method and body preserved), pointing only at hosts the policy vouches for, so
// the Host header cannot turn it into an open redirect.
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { errorBody } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { SnapshotSource } from './gateway-server.js';

function requestHost(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (!host) return undefined;
  const bracket = host.startsWith('[');
  const end = bracket ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}

export function redirectLocation(req: IncomingMessage, source: SnapshotSource): string | undefined {
  const snapshot = source.current;
  const { server } = snapshot.policy;
  const asked = requestHost(req);
  const host =
    asked !== undefined && snapshot.redirectHosts.has(asked.replace(/^\[|\]$/g, ''))
      ? asked
      : server.public_host;
  if (!host) return undefined;
  const port = server.https.listen.port;
  const target = req.url && req.url.startsWith('/') ? req.url : '/';
  return `https://${host}${port === 443 ? '' : `:${port}`}${target}`;
}

export function createRedirectServer(source: SnapshotSource, logger: Logger): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const id = randomUUID();
    const location = redirectLocation(req, source);
    // The body is never read: drain it so the connection can be closed cleanly.
    req.resume();
    if (location) {
      res.writeHead(308, { location, 'x-request-id': id, 'content-length': 0, connection: 'close' });
      res.end();
    } else {
      const body = errorBody(
        'https_required',
        id,
        'this listener only redirects to HTTPS, and the Host header names no host this gateway serves; use https://',
      );
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'x-request-id': id, connection: 'close' });
      res.end(body);
    }
    logger.info(
      { request_id: id, listener: 'http', method: req.method, status: res.statusCode, client_ip: req.socket.remoteAddress },
      'request',
    );
  });
}
