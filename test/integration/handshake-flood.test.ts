// Connections that open and never finish their TLS handshake must not cost a file descriptor for
// longer than server.limits.handshake_timeout. Through the real binary: 2,000 connections stop
// mid-handshake (half of them after a partial ClientHello, half before sending a byte), the
// gateway's descriptor count comes back to where it started, and normal clients are served
// throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { startCli } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

const FLOOD = 2000;

const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

test('2,000 connections stuck in the TLS handshake are closed after handshake_timeout; the descriptors come back and normal clients are served', async (t) => {
  const ctx = await policyContext();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { handshake_timeout: 1s }
  # One process: the test counts the descriptors of the pid it started, which with workers
  # would be the primary's, not those of the worker holding the stuck handshakes.
  workers: 1
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
  const sockets: Socket[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let peak = 0;
  try {
    const pid = gw.child.pid!;
    // One request first, so the upstream pool and lazily opened files are part of the baseline.
    assert.equal((await httpsRequest(ctx.httpsPort, ca, { path: '/api/warm' })).status, 200);
    const baseline = fds(pid);

    // Sampled, not asserted at one instant: the first connections may time out before the last open.
    peak = baseline;
    sampler = setInterval(() => (peak = Math.max(peak, fds(pid))), 10);
    let closed = 0;
    // In batches, so the flood never overruns the listen backlog: a connection the kernel
    // refused would prove nothing about the gateway.
    for (let from = 0; from < FLOOD; from += 250) {
      await Promise.all(
        Array.from({ length: Math.min(250, FLOOD - from) }, (_, k) =>
          new Promise<void>((resolve, reject) => {
            const s = connect(ctx.httpsPort, '127.0.0.1', () => {
              // A TLS record header announcing a ClientHello whose body never comes.
              if ((from + k) % 2 === 0) s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
              s.off('error', reject);
              s.on('error', () => {});
              resolve();
            });
            s.once('error', reject);
            s.once('close', () => closed++);
            sockets.push(s);
          }),
        ),
      );
    }
    // Normal clients are served while the flood is held.
    for (let i = 0; i < 5; i++) assert.equal((await httpsRequest(ctx.httpsPort, ca, { path: `/api/during-${i}` })).status, 200);

    // The flood's clients never close; the gateway must.
    await waitUntil(() => closed === FLOOD || undefined, 'every stuck connection closed by the gateway', {
      timeoutMs: 30_000,
      describe: () => `${closed} of ${FLOOD} closed, ${fds(pid)} descriptors; gateway output:\n${gw.output().slice(-3000)}`,
    });
    clearInterval(sampler);
    assert.ok(peak > baseline, `the flood held descriptors in the gateway (peak ${peak}, baseline ${baseline})`);
    await waitUntil(() => fds(pid) <= baseline + 2 || undefined, 'the descriptors back at the baseline', {
      timeoutMs: 30_000,
      describe: () => `${fds(pid)} descriptors, baseline ${baseline}`,
    });
    assert.equal((await httpsRequest(ctx.httpsPort, ca, { path: '/api/after' })).status, 200);
    t.diagnostic(`descriptors: baseline ${baseline}, peak ${peak}, after ${fds(pid)}`);
  } finally {
    clearInterval(sampler);
    for (const s of sockets) s.destroy();
    gw.kill();
    await gw.exited();
    await upstream.close();
  }
});
