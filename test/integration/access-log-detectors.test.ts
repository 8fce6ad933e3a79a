// The access log through the real gateway: personal data in a request's path and query never
// reaches the log in clear, while the upstream still gets the request exactly as sent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let t: TestGateway;
let upstream: TestUpstream;

before(async () => {
  upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  t = await startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
mask_profiles:
  users:
    drop: [session_key]
    partial:
      phone: { keep_start: 3, keep_end: 4 }
    detect: [cn_mobile, email]
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy, mask: users }
defaults: { allow: any }
`,
  );
});
after(async () => {
  await t.close();
  await upstream.close();
});

/** The access line of one request; it is written as the response closes, so it is waited for. */
async function accessLine(id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const line = t.logs.find((l) => l['msg'] === 'request' && l['request_id'] === id);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a proxied request: the path and query are masked in the log, not on the way to the upstream', { timeout: 10_000 }, async () => {
  const sent = '/api/users/13812345678?phone=13812345678&to=13912345678&mail=bob%40example.com&page=2';
  const res = await httpsRequest(t.port, t.ca, { path: sent });
  assert.equal(res.status, 200);
  assert.equal(upstream.received.at(-1)!.url, sent);
  const line = await accessLine(String(res.headers['x-request-id']));
  assert.equal(line['route'], 'api');
  assert.equal(line['path'], '/api/users/138****5678');
  assert.equal(line['query'], `phone=[redacted]&to=139****5678&mail=${encodeURIComponent('b**@example.com')}&page=2`);
});

test('a refused request: its path and query are masked too', { timeout: 10_000 }, async () => {
  const res = await httpsRequest(t.port, t.ca, { path: '/nowhere/13700001111?contact=13700002222' });
  assert.equal(res.status, 404);
  const line = await accessLine(String(res.headers['x-request-id']));
  assert.equal(line['reason'], 'route_not_found');
  assert.equal(line['path'], '/nowhere/137****1111');
  assert.equal(line['query'], 'contact=137****2222');
});

test('none of those numbers or addresses is anywhere in the log', () => {
  const text = t.logText();
  assert.ok(text.includes('"msg":"request"'), 'the access lines were written');
  for (const clear of ['13812345678', '13912345678', '13700001111', '13700002222', 'bob@example.com', 'bob%40example.com']) {
    assert.ok(!text.includes(clear), `${clear} was logged`);
  }
});
