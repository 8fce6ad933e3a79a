// What the server.workers tests share: a two-worker policy, the log lines of the primary and its
// workers, which worker answered a request, and the worker processes' ids.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { PolicyContext } from './gateway.js';
import { httpsRequest, type ClientResponse } from './https-client.js';
import { startUpstream, type TestUpstream } from './upstream.js';
import type { CliGateway } from './process.js';
import { waitUntil } from './wait.js';

/** `alerts`: a reload_failed rule posting to the webhook in the environment's ALERT_WEBHOOK; `redis`: the store at its REDIS_URL. */
export const policy = (ctx: PolicyContext, upstream: string, opts: { limit?: number; shutdown?: string; alerts?: boolean; redis?: boolean } = {}): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  drain_delay: 1ms
  shutdown_timeout: ${opts.shutdown ?? '10s'}
  workers: 2
${ctx.tlsSection}
${opts.redis ? 'store: { kind: redis, redis_url: "${REDIS_URL}", command_timeout: 1s }\n' : ''}upstreams:
  up: { url: "${upstream}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: up
${opts.limit === undefined ? '' : `    rate_limit: { key: ip, limit: ${opts.limit}, window: 1h }\n`}defaults: { allow: any }
${opts.alerts ? 'alerts:\n  channels:\n    hook: { kind: webhook, url: "${ALERT_WEBHOOK}" }\n  rules:\n    - { name: reload, kind: reload_failed, channels: [hook] }\n' : ''}`;

/** The gateway's JSON log lines (the primary's and every worker's) written after `from`. */
export function lines(gw: CliGateway, from = 0): Record<string, unknown>[] {
  return gw
    .output()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The workers whose access lines answered these request ids, once every line is written. */
export async function servedBy(gw: CliGateway, ids: readonly string[]): Promise<unknown[]> {
  const want = new Set(ids);
  const found = await waitUntil(
    () => {
      const access = lines(gw).filter((l) => typeof l.status === 'number' && want.has(l.request_id as string));
      return access.length >= want.size ? access : undefined;
    },
    `access lines of ${want.size} requests`,
    { describe: gw.output },
  );
  return [...new Set(found.map((l) => l.worker))].sort();
}

/** The worker processes, in the order they were started. */
export function workerPids(gw: CliGateway): number[] {
  const pid = gw.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

export async function metrics(ctx: PolicyContext): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${ctx.adminPort}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Each request on a connection of its own: the primary hands connections to the workers in turn. */
export function get(ctx: PolicyContext, path = '/api/x'): Promise<ClientResponse> {
  return httpsRequest(ctx.httpsPort, readFileSync(ctx.chain.root), { path });
}

export async function named(name: string): Promise<TestUpstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
}

