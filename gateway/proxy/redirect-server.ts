// The plain-HTTP listener: it never proxies. Every request is answered with a 308 to the same
// path on HTTPS (method and body preserved), pointing only at hosts the policy vouches for, so
// the Host header cannot turn it into an open redirect. With `server.https: off` the same answer
// is given by the gateway's own plain listener to every request that did not come through a
// trusted load balancer as https (gateway-server.ts).
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { errorBody } from '../errors.js';
import { hostOf } from '../net/host.js';
import type { Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { SnapshotSource } from './gateway-server.js';

export function redirectLocation(req: IncomingMessage, source: SnapshotSource): string | undefined {
  const snapshot = source.current;
  const { server } = snapshot.policy;
  // The normal form (net/host.ts): `API.Example.com.:80` asks for `api.example.com`; a Host with
  // no normal form asks for nothing, and gets public_host.
  const asked = hostOf(req.headers.host);
  const host =
    asked !== undefined && snapshot.redirectHosts.has(asked.replace(/^\[|\]$/g, ''))
      ? asked
      : server.public_host;
  if (!host) return undefined;
  // Without an HTTPS listener of its own, https is the load balancer's, on the standard port.
  const port = server.public_port ?? (server.https ? server.https.listen.port : 443);
  const target = req.url && req.url.startsWith('/') ? req.url : '/';
  return `https://${host}${port === 443 ? '' : `:${port}`}${target}`;
}

export interface PlainAnswer {
  decision: 'redirect' | 'https_required';
  status: number;
  headers: Record<string, string | number>;
  body: string;
}

/** The answer to a request that arrived over plain HTTP: a 308, or 400 when no host is vouched for. */
export function plainAnswer(req: IncomingMessage, source: SnapshotSource, id: string): PlainAnswer {
  const location = redirectLocation(req, source);
  const idHeader = source.current.policy.server.request_id.header;
  if (location) {
    return { decision: 'redirect', status: 308, headers: { location, [idHeader]: id, 'content-length': 0, connection: 'close' }, body: '' };
  }
  const body = errorBody(
    'https_required',
    id,
    'this listener only redirects to HTTPS, and the Host header names no host this gateway serves; use https://',
  );
  return {
    decision: 'https_required',
    status: 400,
    headers: { 'content-type': 'application/json; charset=utf-8', [idHeader]: id, 'content-length': Buffer.byteLength(body), connection: 'close' },
    body,
  };
}

export function createRedirectServer(source: SnapshotSource, logger: Logger, decisions: Decisions, metrics?: Pick<Metrics, 'route'>): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const id = randomUUID();
    const answer = plainAnswer(req, source, id);
    decisions.count(answer.decision);
    if (answer.decision !== 'redirect') metrics?.route(undefined).refusal(answer.decision);
    // The body is never read: drain it so the connection can be closed cleanly.
    req.resume();
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    logger.info(
      { request_id: id, listener: 'http', method: req.method, status: res.statusCode, reason: answer.decision, client_ip: req.socket.remoteAddress },
      'request',
    );
  });
}
