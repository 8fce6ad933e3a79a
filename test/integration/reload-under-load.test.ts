// A reload of a 10,000-route policy while a client keeps sending: the policy is validated in a
// worker and compiled in turns, so requests keep being answered by the policy in force, and the
// new one takes over when it is ready. The event loop's delay and the requests' latency during
// the reload are reported, not asserted: this machine's clock measures its neighbours too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startTestGateway, type PolicyContext } from '../helpers/gateway.js';
import { replaceFile } from '../helpers/process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const ROUTES = 10_000;
/** Requests in flight at once, and the most the client sends: the load is bounded either way. */
const CONCURRENCY = 4;
const MAX_REQUESTS = 20_000;

function named(name: string): Promise<TestUpstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
}

/** Every route on upstream `a`, except the last, which goes to `last`. */
function policy(ctx: PolicyContext, ups: { a: string; b: string }, last: 'a' | 'b'): string {
  const routes = Array.from({ length: ROUTES }, (_, i) => `  - { name: r${i}, match: { path_prefix: /svc${i}/ }, upstream: ${i === ROUTES - 1 ? last : 'a'} }`);
  return [
    'version: 1',
    'server:',
    `  https: { listen: "127.0.0.1:${ctx.httpsPort}" }`,
    ctx.tlsSection,
    'upstreams:',
    `  a: { url: "${ups.a}" }`,
    `  b: { url: "${ups.b}" }`,
    'defaults: { allow: any }',
    'routes:',
    ...routes,
    '',
  ].join('\n');
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

test('a 10,000-route policy reloads under a stream of requests: every request answered 200, the new policy in force', async (t) => {
  const a = await named('A');
  const b = await named('B');
  const ups = { a: a.url, b: b.url };
  const gw = await startTestGateway((ctx) => policy(ctx, ups, 'a'));
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: gw.ca });
  const get = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, servername: 'localhost', path, headers: { host: 'localhost' }, agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });

  const answers = new Map<string, number>();
  /** Latency of each request answered while the reload ran, in ms. */
  const during: number[] = [];
  let reloading = false;
  let sent = 0;
  let running = true;
  const loops = Array.from({ length: CONCURRENCY }, async (_, n) => {
    while (running && sent < MAX_REQUESTS) {
      // Spread over the whole table, the last route included.
      const route = (sent++ * 7919 + n) % ROUTES;
      const started = performance.now();
      const seenReloading = reloading;
      const { status, body } = await get(`/svc${route}/x`).catch((err: Error) => ({ status: 0, body: err.message }));
      if (seenReloading || reloading) during.push(performance.now() - started);
      const outcome = `${status} ${status === 200 ? 'ok' : body}`;
      answers.set(outcome, (answers.get(outcome) ?? 0) + 1);
    }
  });

  const delay = monitorEventLoopDelay({ resolution: 1 });
  try {
    assert.equal((await get(`/svc${ROUTES - 1}/x`)).body, 'A');
    const before = gw.gw.snapshot;
    delay.enable();
    reloading = true;
    replaceFile(join(gw.ctx.dir, 'gateway.yaml'), policy(gw.ctx, ups, 'b'));
    // The file watcher starts the reload; the swapped snapshot says it is done. (Polling the log
    // text instead would itself hold the event loop measured here.)
    const deadline = Date.now() + 120_000;
    while (gw.gw.snapshot === before) {
      if (Date.now() > deadline || sent >= MAX_REQUESTS) assert.fail(`no reload:\n${gw.logText()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    reloading = false;
    delay.disable();
    assert.equal((await get(`/svc${ROUTES - 1}/x`)).body, 'B', 'the reloaded policy is in force');
    assert.equal((await get('/svc0/x')).body, 'A');
  } finally {
    running = false;
    await Promise.all(loops);
    agent.destroy();
    await gw.close();
    await a.close();
    await b.close();
  }

  const total = [...answers.values()].reduce((s, n) => s + n, 0);
  assert.deepEqual([...answers.keys()], ['200 ok'], `every request answered 200: ${JSON.stringify(Object.fromEntries(answers))}`);
  assert.match(gw.logText(), /"msg":"policy reloaded"/);
  assert.doesNotMatch(gw.logText(), /policy worker unavailable/, 'the reload validated in the worker');
  const sorted = [...during].sort((x, y) => x - y);
  t.diagnostic(
    `${total} requests, ${during.length} during the reload: latency p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms; ` +
      `event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`,
  );
});
