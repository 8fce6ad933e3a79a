// A connection stuck in its TLS handshake never holds exit: with handshake_timeout far longer
// than shutdown_timeout, SIGTERM still ends the process at shutdown_timeout, through the real
// binary, with the stuck socket cut by the gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { startCli } from '../helpers/process.js';

test('SIGTERM with a connection stuck mid-handshake: the socket is cut at shutdown_timeout and wxgw exits 0', async () => {
  const ctx = await policyContext();
  const upstream = await startUpstream();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { handshake_timeout: 10m }
  drain_delay: 1ms
  shutdown_timeout: 300ms
${ctx.tlsSection}
upstreams:
  app: { url: "${upstream.url}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: app }
defaults: { allow: any }
`,
  );
  const gw = await startCli(file);
  const events: string[] = [];
  let stuck: Socket | undefined;
  try {
    assert.equal((await httpsRequest(ctx.httpsPort, readFileSync(ctx.chain.root), { path: '/api/warm' })).status, 200);
    // A TLS record header announcing a ClientHello whose body never comes.
    stuck = await new Promise<Socket>((resolve, reject) => {
      const s = connect(ctx.httpsPort, '127.0.0.1', () => {
        s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        resolve(s);
      });
      s.once('error', reject);
    });
    stuck.on('error', () => {});
    stuck.once('close', () => events.push('stuck socket closed'));
    const exited = gw.exited().then((code) => {
      events.push('exited');
      return code;
    });
    gw.child.kill('SIGTERM');
    // Ten minutes of handshake_timeout would hold it far past this if the socket were waited on.
    const code = await Promise.race([exited, new Promise<'held'>((r) => setTimeout(() => r('held'), 30_000).unref())]);
    assert.notEqual(code, 'held', `exit was held by the socket stuck in its handshake\n${gw.output()}`);
    assert.equal(code, 0, gw.output());
    assert.match(gw.output(), /"shutdown_timeout_ms":300.*requests still in flight at shutdown_timeout/);
    await new Promise<void>((r) => (stuck!.closed ? r() : stuck!.once('close', () => r())));
    assert.ok(events.includes('stuck socket closed'), events.join(', '));
  } finally {
    stuck?.destroy();
    gw.kill();
    await upstream.close();
  }
});
