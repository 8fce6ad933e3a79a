// Who cut an answer short, as the access log tells it: an upstream that dies in the middle of its
// body is an upstream failure (the status that was sent, reason upstream_unavailable, counted as
// an upstream error); a client that hangs up is 499 client_closed. Both on a streamed route and
// on a masked one (the masker's stream between upstream and client), with a real upstream that
// destroys its socket and a real client that destroys its own.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** A response the test reads chunk by chunk, and how it ended for the client. */
interface Stream {
  res: IncomingMessage;
  firstChunk: Promise<Buffer>;
  ended: Promise<'end' | 'aborted'>;
  hangUp(): void;
}

function open(port: number, ca: Buffer, path: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername: 'localhost', path, headers: { host: 'localhost' }, ca, agent: false }, (res) => {
      const firstChunk = new Promise<Buffer>((r) => res.once('data', r));
      const ended = new Promise<'end' | 'aborted'>((r) => {
        res.once('end', () => r('end'));
        res.once('aborted', () => r('aborted'));
        res.once('error', () => r('aborted'));
        res.once('close', () => r(res.complete ? 'end' : 'aborted'));
      });
      res.resume();
      resolve({ res, firstChunk, ended, hangUp: () => req.destroy() });
    });
    req.on('error', (err) => reject(err));
    req.end();
  });
}

describe('mid-body endings in the access log', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  /** The upstream's socket of each request in progress, by path, so a test can kill it mid-body. */
  const sockets = new Map<string, Socket>();
  const closed: string[] = [];

  before(async () => {
    upstream = await startUpstream((req, res) => {
      // Headers and the first part of a JSON array (past the masked route's stream_above, so the
      // masker starts streaming), then nothing: the test decides what ends it.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[' + Array.from({ length: 100 }, (_, i) => `{"phone":"13812345678","i":${i}}`).join(','));
      sockets.set(req.url!, req.socket);
      res.on('close', () => closed.push(req.url!));
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
mask_profiles:
  users:
    partial: { phone: { keep_start: 3, keep_end: 4 } }
    stream_above: 1kb
upstreams:
  legacy: { url: "${upstream.url}", timeout: 30s }
routes:
  - { name: streamed, match: { path_prefix: /streamed/ }, upstream: legacy }
  - { name: masked, match: { path_prefix: /masked/ }, upstream: legacy, mask: users }
defaults:
  allow: any
`,
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  const accessLine = async (path: string): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const line = t.logs.find((l) => l.msg === 'request' && l.path === path);
      if (line) return line;
      if (Date.now() > deadline) assert.fail(`no access line for ${path}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  const upstreamErrors = async (route: string): Promise<number> => {
    const metric = await t.gw.metrics.registry.getSingleMetric('wxgw_upstream_errors_total')!.get();
    return metric.values.find((v) => v.labels.route === route && v.labels.reason === 'upstream_unavailable')?.value ?? 0;
  };

  for (const route of ['streamed', 'masked']) {
    test(`${route}: an upstream that dies mid-body is logged as an upstream failure with the status sent`, async () => {
      const path = `/${route}/upstream-dies`;
      const errorsBefore = await upstreamErrors(route);
      const decisionsBefore = (await t.gw.decisions.snapshot()).upstream_unavailable ?? 0;
      const s = await open(t.port, t.ca, path);
      assert.equal(s.res.statusCode, 200);
      await s.firstChunk;
      // The upstream process dies with the answer half sent.
      sockets.get(path)!.destroy();
      assert.equal(await s.ended, 'aborted', 'the client sees a cut connection, never a complete-looking body');

      const line = await accessLine(path);
      assert.equal(line.reason, 'upstream_unavailable');
      assert.equal(line.status, 200, 'the status the client was sent');
      assert.equal(line.route, route);
      assert.equal(await upstreamErrors(route), errorsBefore + 1);
      assert.equal((await t.gw.decisions.snapshot()).upstream_unavailable, decisionsBefore + 1);
      assert.ok(t.logs.some((l) => l.msg === 'upstream response failed mid-body' && l.request_id === line.request_id));
    });

    test(`${route}: a client that hangs up mid-body is 499 client_closed, and its upstream request is cancelled`, async () => {
      const path = `/${route}/client-leaves`;
      const errorsBefore = await upstreamErrors(route);
      const s = await open(t.port, t.ca, path);
      await s.firstChunk;
      s.hangUp();
      const line = await accessLine(path);
      assert.equal(line.reason, 'client_closed');
      assert.equal(line.status, 499);
      // The gateway let go of the upstream: it saw its answer's connection closed.
      const deadline = Date.now() + 10_000;
      while (!closed.includes(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(closed.includes(path), 'the upstream request was cancelled');
      assert.equal(await upstreamErrors(route), errorsBefore, 'a client leaving is not an upstream error');
      assert.ok(!t.logs.some((l) => l.msg === 'upstream response failed mid-body' && l.request_id === line.request_id));
    });
  }
});
