// Listeners: a bind failure is a ListenError naming the address, the policy line and the system
// code; and after a reload, new handshakes get the new certificates, with SNI and without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Registry } from 'prom-client';
import { bindAdmin, ListenError, type Listener } from '../../gateway/runtime/listeners.js';
import { ensureDevChain } from '../../gateway/tls/devchain.js';
import { startTestGateway } from '../helpers/gateway.js';

test('an address in use is a ListenError with the address, the policy position and EADDRINUSE', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const { port } = taken.address() as { port: number };
  const open: Listener[] = [];
  const pos = { file: '/etc/wxgw/gateway.yaml', line: 5, col: 3, path: 'server.admin.listen' };
  try {
    const err = await bindAdmin(open, { host: '127.0.0.1', port }, pos, { failing: () => [] }, new Registry()).then(
      () => assert.fail('bound a port in use'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ListenError);
    assert.equal(err.code, 'EADDRINUSE');
    assert.deepEqual(err.address, { host: '127.0.0.1', port });
    assert.equal(err.pos, pos);
    assert.equal(err.message, `cannot listen on 127.0.0.1:${port} (server.admin.listen at /etc/wxgw/gateway.yaml:5:3): the address is already in use`);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    assert.deepEqual(open, [], 'nothing half-bound is left to close');
  } finally {
    taken.close();
  }
});

function servedSerial(port: number, servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...(servername !== undefined && { servername }), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

test('after a reload, handshakes with and without SNI get the certificate of the snapshot in force', async (t) => {
  const renewed = await ensureDevChain(mkdtempSync(join(tmpdir(), 'wxgw-renewed-')));
  let tlsSection = '';
  const policy = (tls: string, httpsPort: number): string => `version: 1
server:
  https: { listen: "127.0.0.1:${httpsPort}" }
${tls}
upstreams:
  a: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: a }
defaults: { allow: any }
`;
  const gw = await startTestGateway((ctx) => {
    tlsSection = ctx.tlsSection;
    return policy(ctx.tlsSection, ctx.httpsPort);
  });
  t.after(() => gw.close());
  const port = gw.port;
  const before = { sni: await servedSerial(port, 'localhost'), none: await servedSerial(port, undefined) };
  assert.equal(before.sni, before.none);

  const next = tlsSection.replace(gw.ctx.chain.root, renewed.root).replace(gw.ctx.chain.fullchain, renewed.fullchain).replace(gw.ctx.chain.key, renewed.key);
  assert.notEqual(next, tlsSection);
  writeFileSync(join(gw.ctx.dir, 'gateway.yaml'), policy(next, gw.ctx.httpsPort));
  const result = await gw.gw.reload();
  assert.equal(result.ok, true);
  const after = { sni: await servedSerial(port, 'localhost'), none: await servedSerial(port, undefined) };
  assert.notEqual(after.sni, before.sni, 'SNI: the new certificate');
  assert.equal(after.none, after.sni, 'no SNI: the new default certificate too');
});
