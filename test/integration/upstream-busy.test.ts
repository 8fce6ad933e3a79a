// Clients that never read cannot starve an upstream: the requests behind them wait at most
// queue_timeout for a connection and get 503 upstream_busy, and server.limits.send_timeout cuts
// the stalled clients so their connections serve others again. The pool is made small
// (`connections: 3`) so that a handful of clients shows what 130 would do to the default 128.
// Real HTTPS, a real upstream; no assertion on how long anything took.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { eventually, waitUntil } from '../helpers/wait.js';

const CONNECTIONS = 3;
const STALLED = CONNECTIONS + 2;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
/** Far more than socket buffers on both hops hold: the upstream is held back by a stalled client. */
const CHUNKS = 2000;

interface Backend {
  up: TestUpstream;
  /** Big answers that ended before their last byte: the gateway cancelled them. */
  cancelled: number;
  /** How many big answers had been cancelled when each /ok request arrived. */
  okAfter: number[];
}

async function backend(): Promise<Backend> {
  const b: Backend = { up: undefined!, cancelled: 0, okAfter: [] };
  b.up = await startUpstream((req, res) => {
    if (req.url === '/ok') {
      b.okAfter.push(b.cancelled);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    let sent = 0;
    res.once('close', () => {
      if (sent < CHUNKS) b.cancelled++;
    });
    const more = (): void => {
      while (sent < CHUNKS) {
        sent++;
        if (!res.write(CHUNK)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    more();
  });
  return b;
}

async function gateway(b: Backend, limits: { send_timeout: string; queue_timeout: string }): Promise<TestGateway> {
  return startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { send_timeout: ${limits.send_timeout} }
${ctx.tlsSection}
upstreams:
  app: { url: "${b.up.url}", timeout: 60s, connections: ${CONNECTIONS}, queue_timeout: ${limits.queue_timeout} }
routes:
  - { name: all, match: { path_prefix: / }, upstream: app }
defaults: { allow: any }
`,
  );
}

interface Stalled {
  req: ClientRequest;
  /** The status of the answer, once its first body bytes came; the client reads nothing more. */
  status: Promise<{ status: number; body: string }>;
}

function stall(t: TestGateway, path: string): Stalled {
  let req!: ClientRequest;
  const status = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = request({ host: '127.0.0.1', port: t.port, path, ca: t.ca, servername: 'localhost', headers: { host: 'localhost' }, agent: false }, (res: IncomingMessage) => {
      res.once('data', (chunk: Buffer) => {
        res.pause();
        resolve({ status: res.statusCode ?? 0, body: chunk.toString('utf8', 0, 200) });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET') reject(err);
    });
  });
  req.end();
  return { req, status };
}

const reason = (body: string): string => (JSON.parse(body) as { error: { reason: string } }).error.reason;

/** Only turns a hang (a request nothing bounds) into a failure; a healthy run needs a few seconds. */
const HANG = { timeout: 120_000 };

test('behind clients that hold every connection, requests get 503 upstream_busy instead of waiting', HANG, async () => {
  const b = await backend();
  // send_timeout far away: here only the queue bound frees the requests behind the stalled ones.
  const t = await gateway(b, { send_timeout: '10m', queue_timeout: '200ms' });
  const stalled: Stalled[] = [];
  try {
    for (let i = 0; i < STALLED; i++) stalled.push(stall(t, `/big/${i}`));
    const answers = await Promise.all(stalled.map((s) => s.status));
    // The first CONNECTIONS took every connection and stopped reading; the others waited their
    // queue_timeout for one and were told the upstream is busy.
    assert.equal(answers.filter((a) => a.status === 200).length, CONNECTIONS);
    const busy = answers.filter((a) => a.status !== 200);
    assert.equal(busy.length, STALLED - CONNECTIONS);
    for (const a of busy) {
      assert.equal(a.status, 503);
      assert.equal(reason(a.body), 'upstream_busy');
    }
    const normal = await httpsRequest(t.port, t.ca, { path: '/ok' });
    assert.equal(normal.status, 503);
    assert.equal(normal.json<{ error: { reason: string } }>().error.reason, 'upstream_busy');
    assert.deepEqual(b.okAfter, [], 'the busy request never reached the upstream');
    // Clients that give up free their connections for the next requests.
    for (const s of stalled) s.req.destroy();
    await waitUntil(() => (b.cancelled === CONNECTIONS || undefined), 'the stalled answers cancelled');
    const served = await eventually(async () => {
      const res = await httpsRequest(t.port, t.ca, { path: '/ok' });
      return res.status === 200 ? res : undefined;
    }, 'a request served once the connections are free');
    assert.equal(served.text, '{"ok":true}');
  } finally {
    for (const s of stalled) s.req.destroy();
    await t.close();
    await b.up.close();
  }
});

test('clients that never read are cut after send_timeout, and the requests queued behind them are served', HANG, async () => {
  const b = await backend();
  // A queue bound far away: here the send_timeout cuts are what frees the connections.
  const t = await gateway(b, { send_timeout: '300ms', queue_timeout: '1m' });
  const stalled: Stalled[] = [];
  try {
    for (let i = 0; i < STALLED; i++) stalled.push(stall(t, `/big/${i}`));
    // Every connection is held by a client that stopped reading; the rest wait in the queue.
    await Promise.all(stalled.slice(0, CONNECTIONS).map((s) => s.status));
    const normal = httpsRequest(t.port, t.ca, { path: '/ok', timeoutMs: 60_000 });
    const answers = await Promise.all(stalled.map((s) => s.status));
    // Each stalled client, queued or not, got its answer started, stopped reading and was cut.
    for (const a of answers) assert.equal(a.status, 200);
    await waitUntil(() => (b.cancelled === STALLED || undefined), 'every stalled answer cut and cancelled', { timeoutMs: 30_000 });
    const served = await normal;
    assert.equal(served.status, 200);
    assert.equal(served.text, '{"ok":true}');
    // It got a connection only after a stalled client had been cut.
    assert.ok(b.okAfter[0]! >= 1, `cancelled before /ok arrived: ${b.okAfter[0]}`);
  } finally {
    for (const s of stalled) s.req.destroy();
    await t.close();
    await b.up.close();
  }
});
