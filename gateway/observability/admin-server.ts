// The admin listener: liveness and readiness for orchestrators. It is bound to loopback by
// default and never shares a port with traffic.
import { createServer, type Server } from 'node:http';

export interface Readiness {
  /** Names of the checks that fail; empty when ready. */
  failing(): string[];
}

export function createAdminServer(readiness: Readiness): Server {
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
      return json(failing.length === 0 ? 200 : 503, { status: failing.length === 0 ? 'ready' : 'not ready', failing });
    }
    return json(404, { status: 'not found', endpoints: ['/healthz', '/readyz'] });
  });
}
