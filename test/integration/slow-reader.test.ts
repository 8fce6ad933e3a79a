// A client that stops reading is cut after server.limits.send_timeout and its upstream request is
// cancelled, on the streamed path and on the masked one; a request that merely waits for a slow
// upstream is never cut by it; other clients are served throughout. Real HTTPS, a real upstream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const CHUNK = Buffer.alloc(64 * 1024, 'x');
/** Far more than socket buffers on both hops hold: the upstream must be held back. */
const CHUNKS = 2000;

let t: TestGateway;
let upstream: TestUpstream;
/** Upstream answers that ended before their last byte: the gateway cancelled them. */
const cancelled: string[] = [];
let releaseSlow!: () => void;
const slowReleased = new Promise<void>((r) => (releaseSlow = r));

before(async () => {
  upstream = await startUpstream(async (req, res) => {
    if (req.url === '/slow') {
      // Answers only when the test says so, after a stalled reader was already cut.
      await slowReleased;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"slow":true}');
      return;
    }
    if (req.url === '/ok') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
      return;
    }
    const json = req.url!.startsWith('/masked');
    res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/octet-stream' });
    let sent = 0;
    res.once('close', () => {
      if (sent < CHUNKS) cancelled.push(req.url!);
    });
    if (json) res.write('[');
    const more = (): void => {
      while (sent < CHUNKS) {
        sent++;
        const piece = json ? Buffer.from(`${sent > 1 ? ',' : ''}"${CHUNK.toString()}"`) : CHUNK;
        if (!res.write(piece)) {
          res.once('drain', more);
          return;
        }
      }
      res.end(json ? ']' : undefined);
    };
    more();
  });
  t = await startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { send_timeout: 500ms }
${ctx.tlsSection}
upstreams:
  app: { url: "${upstream.url}", timeout: 60s }
mask_profiles:
  p: { drop: [session_key], stream_above: 64kb }
routes:
  - { name: stream, match: { path_prefix: /stream }, upstream: app }
  - { name: masked, match: { path_prefix: /masked }, upstream: app, mask: p }
  - { name: other, match: { path_prefix: / }, upstream: app }
defaults: { allow: any }
`,
  );
});

after(async () => {
  releaseSlow();
  await t.close();
  await upstream.close();
});

/**
 * Opens a request, reads its first chunk, then never reads again. A paused socket does not notice
 * the gateway closing it, so the test watches the upstream, which sees its answer cancelled.
 */
function stallAfterFirstChunk(path: string): { started: Promise<void>; req: ClientRequest } {
  let req!: ClientRequest;
  const started = new Promise<void>((resolve, reject) => {
    req = request({ host: '127.0.0.1', port: t.port, path, ca: t.ca, servername: 'localhost', headers: { host: 'localhost' }, agent: false }, (res: IncomingMessage) => {
      res.once('data', () => {
        res.pause();
        resolve();
      });
    });
    req.on('error', reject);
  });
  req.end();
  return { started, req };
}

test('a client that stops reading a streamed answer is cut and its upstream request cancelled; others are served', async () => {
  const slow = httpsRequest(t.port, t.ca, { path: '/slow', timeoutMs: 60_000 });
  const stalled = stallAfterFirstChunk('/stream/big');
  await stalled.started;
  // Served while the stalled reader holds its connection.
  assert.equal((await httpsRequest(t.port, t.ca, { path: '/ok' })).status, 200);
  await waitUntil(() => cancelled.includes('/stream/big') || undefined, 'the upstream sees the streamed answer cancelled', { timeoutMs: 30_000 });
  stalled.req.destroy();
  // The request waiting on its upstream all this while was not cut: only a stalled write arms the timer.
  releaseSlow();
  const answered = await slow;
  assert.equal(answered.status, 200);
  assert.equal(answered.text, '{"slow":true}');
});

test('a client that stops reading a masked, streamed answer is cut too', async () => {
  const stalled = stallAfterFirstChunk('/masked/big');
  await stalled.started;
  await waitUntil(() => cancelled.includes('/masked/big') || undefined, 'the upstream sees the masked answer cancelled', { timeoutMs: 30_000 });
  stalled.req.destroy();
  assert.equal((await httpsRequest(t.port, t.ca, { path: '/ok' })).status, 200);
});
