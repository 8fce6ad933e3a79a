// A shutdown no client notices, through the real binary: keep-alive clients sending back to back
// through a SIGTERM see no failed request. /readyz turns 503 at once while requests are still
// served and new connections still accepted for server.drain_delay; every answer from the signal
// on says `Connection: close` (forwarded answers and the gateway's own alike), so each client
// leaves its connection before the gateway closes it (opening a new one, as a balancer would send
// elsewhere); then new connections are refused and the process exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { startCli } from '../helpers/process.js';

/** Bounded load: a few clients, each on one keep-alive connection. */
const CLIENTS = 4;

interface ClientRun {
  /** Answers by status. */
  answered: Map<number, number>;
  /** Answers received after /readyz was seen at 503. */
  afterNotReady: number;
  errors: string[];
  /** The connections the client's requests went out on. */
  sockets: Set<Socket>;
  /** Whether the last answer said `Connection: close`. */
  toldToClose: boolean;
  /** A new connection opened although the previous answer had not said close: must stay 0. */
  unexplainedReconnects: number;
  /** Keep-alive answers seen before SIGTERM. */
  keptAlive: number;
}

/**
 * Sends requests one after another on a keep-alive agent limited to one connection: after an
 * answer that says `Connection: close` the agent sends nothing more on that connection and opens
 * a new one. It stops once it was answered after /readyz turned 503.
 */
function runClient(port: number, ca: Buffer, path: string, state: { signalled: boolean; notReady: boolean }): { run: ClientRun; done: Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const run: ClientRun = { answered: new Map(), afterNotReady: 0, errors: [], sockets: new Set(), toldToClose: false, unexplainedReconnects: 0, keptAlive: 0 };
  let last: Socket | undefined;
  const one = (): Promise<boolean> =>
    new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, servername: 'localhost', path, headers: { host: 'localhost' }, agent }, (res) => {
        if (last !== undefined && res.socket !== last && !run.toldToClose) run.unexplainedReconnects++;
        last = res.socket;
        run.sockets.add(res.socket);
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          run.answered.set(status, (run.answered.get(status) ?? 0) + 1);
          if (state.notReady) run.afterNotReady++;
          const close = res.headers.connection === 'close';
          if (!close && !state.signalled) run.keptAlive++;
          run.toldToClose = close;
          resolve(run.afterNotReady === 0);
        });
        res.on('error', (err) => {
          run.errors.push(String(err));
          resolve(false);
        });
      });
      req.on('error', (err) => {
        run.errors.push(String(err));
        resolve(false);
      });
      req.end();
    });
  const done = (async () => {
    while (await one());
    agent.destroy();
  })();
  return { run, done };
}

test('keep-alive clients sending through a SIGTERM see no failed request; /readyz is 503 while they are still served; exit 0', async () => {
  const ctx = await policyContext();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
    res.end('{"ok":true}');
  });
  const file = join(ctx.dir, 'gateway.yaml');
  // Long enough for each client to get an answer during it on a loaded 2-core machine.
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  drain_delay: 3s
  shutdown_timeout: 10s
${ctx.tlsSection}
upstreams:
  app: { url: "${upstream.url}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: app }
defaults: { allow: any }
`,
  );
  const gw = await startCli(file);
  const ca = readFileSync(ctx.chain.root);
  const readyz = `http://127.0.0.1:${ctx.adminPort}/readyz`;
  const state = { signalled: false, notReady: false };
  try {
    assert.equal((await fetch(readyz)).status, 200);
    // Three clients on the forwarded path, one on the gateway's own answer (no route: 404).
    const clients = Array.from({ length: CLIENTS }, (_, i) => runClient(ctx.httpsPort, ca, i === 0 ? '/nowhere' : `/api/c${i}`, state));
    const deadline = Date.now() + 15_000;
    while (clients.some((c) => c.run.keptAlive < 3)) {
      if (Date.now() > deadline) assert.fail(`clients did not get going: ${JSON.stringify(clients.map((c) => c.run.keptAlive))}\n${gw.output()}`);
      await new Promise((r) => setTimeout(r, 20));
    }

    const signalAt = gw.output().length;
    state.signalled = true;
    gw.child.kill('SIGTERM');
    // /readyz turns 503 at once and names the reason.
    let ready: Response;
    for (;;) {
      ready = await fetch(readyz);
      if (ready.status === 503) break;
      await ready.body?.cancel();
      if (Date.now() > deadline + 15_000) assert.fail(`/readyz never turned 503 after SIGTERM\n${gw.output()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    state.notReady = true;
    const body = (await ready.json()) as { status: string; failing: string[] };
    assert.equal(body.status, 'not ready');
    assert.ok(body.failing.some((f) => f.startsWith('draining')), JSON.stringify(body));

    // Still accepting during the delay: a new connection is served, and told to close.
    const fresh = await httpsRequest(ctx.httpsPort, ca, { path: '/api/fresh' });
    const stillAccepting = !/no longer accepting connections/.test(gw.output().slice(signalAt));
    assert.ok(stillAccepting, `the drain delay ended before the new connection was answered; the machine is too slow for this test\n${gw.output()}`);
    assert.equal(fresh.status, 200);
    assert.equal(fresh.headers.connection, 'close');

    await Promise.all(clients.map((c) => c.done));
    for (const [i, { run }] of clients.entries()) {
      const what = `client ${i}: ${JSON.stringify({ ...run, answered: [...run.answered], sockets: run.sockets.size })}`;
      assert.deepEqual(run.errors, [], what);
      assert.ok(run.toldToClose, `${what}: its last answer said Connection: close`);
      assert.equal(run.unexplainedReconnects, 0, `${what}: a connection changed only after an answer said close`);
      assert.ok(run.afterNotReady > 0, `${what}: answered while /readyz said 503`);
      assert.deepEqual([...run.answered.keys()], [i === 0 ? 404 : 200], what);
    }

    // Then the listeners stop accepting, and the process exits 0 without cutting anything.
    await gw.waitFor(/no longer accepting connections/, 20_000, signalAt);
    await assert.rejects(httpsRequest(ctx.httpsPort, ca, { path: '/api/late' }), /ECONNREFUSED|ECONNRESET/);
    assert.equal(await gw.exited(), 0, gw.output());
    assert.doesNotMatch(gw.output(), /still in flight/);
    // Every request that reached the upstream was answered to its client.
    const answered = clients.reduce((n, c) => n + (c.run.answered.get(200) ?? 0), 0) + 1;
    assert.equal(upstream.received.length, answered, 'the upstream saw exactly the requests the clients were answered for');
  } finally {
    gw.kill();
    await upstream.close();
  }
});

test('a request in flight when SIGTERM arrives is answered with Connection: close on its keep-alive connection', async () => {
  const ctx = await policyContext();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const inFlight = new Promise<void>((r) => (arrived = r));
  const upstream = await startUpstream(async (req, res) => {
    if (req.url === '/api/slow') {
      arrived();
      await released;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  drain_delay: 1ms
${ctx.tlsSection}
upstreams:
  app: { url: "${upstream.url}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: app }
defaults: { allow: any }
`,
  );
  const gw = await startCli(file);
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(ctx.chain.root) });
  const get = (path: string): Promise<{ status: number; connection: string | undefined; reused: boolean }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: ctx.httpsPort, servername: 'localhost', path, headers: { host: 'localhost' }, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, reused: req.reusedSocket }));
      });
      req.on('error', reject).end();
    });
  try {
    const warm = await get('/api/warm');
    assert.deepEqual([warm.status, warm.connection], [200, 'keep-alive']);
    // The agent takes the connection back once the answer's end has been handled.
    await new Promise((r) => setImmediate(r));
    const slow = get('/api/slow');
    await inFlight;
    const signalAt = gw.output().length;
    gw.child.kill('SIGTERM');
    await gw.waitFor(/no longer accepting connections/, 10_000, signalAt);
    release();
    const answer = await slow;
    assert.deepEqual([answer.status, answer.connection, answer.reused], [200, 'close', true], 'answered on the kept-alive connection, told to close');
    assert.equal(await gw.exited(), 0, gw.output());
  } finally {
    release();
    agent.destroy();
    gw.kill();
    await upstream.close();
  }
});
