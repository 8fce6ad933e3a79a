// The admin listener: liveness and readiness for orchestrators, Prometheus metrics, the policy in
// force (/config, secrets redacted). It is bound to loopback by default and never shares a port
// with traffic.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface Readiness {
  /** Names of the checks that fail; empty when ready. */
  failing(): string[];
  /** What is wrong without making the gateway unready (a secret file kept at its old value); shown when not empty. */
  warnings?(): string[];
}

/** Readiness answered later: a cluster's primary asks its workers (cluster/primary.ts). */
export interface AsyncReadiness {
  failing(): Promise<string[]>;
  warnings?(): Promise<string[]>;
}

/** What /metrics serves: a Registry, or a cluster primary's view summed over its workers. */
export type MetricsSource = Pick<Registry, 'metrics' | 'contentType'>;

/** The policy in force as /config shows it: secrets already redacted (runtime/policy-records.ts). */
export interface PolicyInForce {
  readonly hash: string;
  readonly loadedAt: Date;
  readonly view: Record<string, unknown>;
}

export function createAdminServer(readiness: Readiness | AsyncReadiness, registry: MetricsSource, policy?: () => PolicyInForce): Server {
  const endpoints = ['/healthz', '/readyz', '/metrics', ...(policy ? ['/config'] : [])];
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { status: 'method not allowed' });
    if (path === '/healthz') return json(200, { status: 'alive' });
    if (path === '/readyz') {
      Promise.all([readiness.failing(), readiness.warnings?.() ?? []]).then(
        ([failing, warnings]) =>
          json(failing.length === 0 ? 200 : 503, { status: failing.length === 0 ? 'ready' : 'not ready', failing, ...(warnings.length > 0 && { warnings }) }),
        (err: unknown) => json(503, { status: 'not ready', failing: [`readiness check failed: ${String(err)}`] }),
      );
      return;
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
    if (path === '/config' && policy) {
      const p = policy();
      return json(200, { hash: p.hash, loaded_at: p.loadedAt.toISOString(), policy: p.view });
    }
    return json(404, { status: 'not found', endpoints });
  });
}
