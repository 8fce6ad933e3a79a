// Graceful shutdown through the real binary: SIGTERM (with a drain delay of 1ms) stops accepting, lets
// requests in flight finish within server.shutdown_timeout, and exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { startCli } from '../helpers/process.js';

const policy = (ctx: PolicyContext, upstream: string, shutdown: string): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  shutdown_timeout: ${shutdown}
  drain_delay: 1ms
${ctx.tlsSection}
upstreams:
  slow: { url: "${upstream}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: slow }
defaults: { allow: any }
`;

/** The upstream answers only when the test calls answer(): the request is in flight until then. */
async function slowCase(shutdown: string) {
  const ctx = await policyContext();
  let arrived!: (answer: () => void) => void;
  const inFlight = new Promise<() => void>((r) => (arrived = r));
  const upstream = await startUpstream((_req, res) => {
    arrived(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('done');
    });
  });
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url, shutdown));
  const gw = await startCli(file);
  const response = httpsRequest(ctx.httpsPort, readFileSync(ctx.chain.root), { path: '/api/slow' }).then(
    (r) => r,
    (err: Error) => err,
  );
  const answer = await inFlight;
  gw.child.kill('SIGTERM');
  return { ctx, gw, response, upstream, answer };
}

test('SIGTERM lets a request in flight finish with 200, then exits 0', async () => {
  const { ctx, gw, response, upstream, answer } = await slowCase('10s');
  try {
    await gw.waitFor(/no longer accepting connections/);
    // The listener is closed at once: a new connection is refused while the old request runs.
    await assert.rejects(httpsRequest(ctx.httpsPort, readFileSync(ctx.chain.root), { path: '/api/new' }), /ECONNREFUSED/);
    answer();
    const res = await response;
    assert.ok(!(res instanceof Error), String(res));
    assert.equal(res.status, 200);
    assert.equal(res.text, 'done');
    assert.equal(await gw.exited(), 0, gw.output());
    assert.doesNotMatch(gw.output(), /still in flight/);
  } finally {
    gw.kill();
    await upstream.close();
  }
});

test('past shutdown_timeout the remaining connections are closed and wxgw still exits 0, with a warning', async () => {
  // Never answered: only shutdown_timeout ends the request.
  const { gw, response, upstream } = await slowCase('500ms');
  try {
    assert.equal(await gw.exited(), 0, gw.output());
    assert.ok((await response) instanceof Error, 'the cut request fails on the client');
    assert.match(gw.output(), /"level":"warn".*"shutdown_timeout_ms":500.*requests still in flight at shutdown_timeout/);
  } finally {
    gw.kill();
    upstream.server.closeAllConnections();
    await upstream.close();
  }
});
