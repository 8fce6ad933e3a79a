// Clients that send too slowly get a JSON 408 and never tie up an upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type TLSSocket } from 'node:tls';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

function rawTls(port: number, ca: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => resolve(s));
    s.on('error', reject);
  });
}

function readAll(s: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('close', () => resolve(text));
  });
}

describe('slow clients', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { headers_timeout: 1s, request_timeout: 1500ms }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }
defaults: { allow: any }
`,
    );
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('a body that does not arrive within request_timeout gets 408 request_timeout as JSON', async () => {
    const s = await rawTls(t.port, t.ca);
    const reply = readAll(s);
    const started = Date.now();
    s.write('POST /api/echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\ncontent-type: text/plain\r\n\r\nonly part');
    const text = await reply;
    assert.ok(Date.now() - started < 10_000, "the policy's 1.5 s limit ended it, not Node's 30 s check interval");
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /content-type: application\/json/i);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { reason: string } };
    assert.equal(body.error.reason, 'request_timeout');
  });

  test('headers that do not arrive within headers_timeout get 408 as JSON', async () => {
    const s = await rawTls(t.port, t.ca);
    const reply = readAll(s);
    s.write('GET /api/user HTTP/1.1\r\nhost: localhost\r\n');
    const text = await reply;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /"reason":"request_timeout"/);
    assert.ok(!upstream.received.some((r) => r.url === '/api/user'), 'the incomplete request never reached the upstream');
  });

  test('oversized request headers get 431 as JSON', async () => {
    const s = await rawTls(t.port, t.ca);
    const reply = readAll(s);
    s.write(`GET /api/user HTTP/1.1\r\nhost: localhost\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const text = await reply;
    assert.match(text, /^HTTP\/1\.1 431 /);
    assert.match(text, /"reason":"headers_too_large"/);
  });
});
