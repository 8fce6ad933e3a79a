// The admin listener: liveness and readiness for orchestrators, Prometheus metrics. It is bound
// to loopback by default and never shares a port with traffic.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface Readiness {
  /** Names of the checks that fail; empty when ready. */
  failing(): string[];
  /** What is wrong without making the gateway unready (a secret file kept at its old value); shown when not empty. */
  warnings?(): string[];
}

export function createAdminServer(readiness: Readiness, registry: Registry): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { status: 'method not allowed' });
    if (path === '/healthz') return json(200, { status: 'alive' });
    if (path === '/readyz') {
      const failing = readiness.failing();
      const warnings = readiness.warnings?.() ?? [];
      return json(failing.length === 0 ? 200 : 503, { status: failing.length === 0 ? 'ready' : 'not ready', failing, ...(warnings.length > 0 && { warnings }) });
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
          res.end(text);
        },
        (err: unknown) => json(500, { status: 'metrics failed', error: String(err) }),
      );
      return;
    }
    return json(404, { status: 'not found', endpoints: ['/healthz', '/readyz', '/metrics'] });
  });
}
