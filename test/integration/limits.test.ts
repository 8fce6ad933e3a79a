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

/**
 * Everything until the gateway closes the connection. The deadline only turns a hang into a
 * clear failure: the policy's limits here are 1-1.5 s, and without the policy's check interval
 * Node would notice an expired request only after its default 30 s.
 */
function readAll(s: TLSSocket, deadlineMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the gateway did not end the request within ${deadlineMs} ms (its own limits are 1-1.5 s); got: ${text}`));
    }, deadlineMs);
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
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
    s.write('POST /api/echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\ncontent-type: text/plain\r\n\r\nonly part');
    const text = await reply;
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
