// Log redaction follows reloads: a reload that adds a masked key hides it in structured fields of
// later log lines, the gateway's own access lines included, and error text loses phone numbers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let t: TestGateway;
let upstream: TestUpstream;

const policy = (ctx: PolicyContext, drop: string[]): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
mask_profiles:
  users:
    drop: [${drop.join(', ')}]
    detect: [cn_mobile]
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy, mask: users }
defaults: { allow: any }
`;

before(async () => {
  upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  t = await startTestGateway((ctx) => policy(ctx, ['session_key']));
});
after(async () => {
  await t.close();
  await upstream.close();
});

const lineWith = (msg: string): Record<string, any> => {
  const line = t.logs.find((l) => l['msg'] === msg);
  assert.ok(line, `no line "${msg}"`);
  return line;
};

async function accessQuery(path: string): Promise<unknown> {
  const res = await httpsRequest(t.port, t.ca, { path });
  assert.equal(res.status, 200);
  const id = String(res.headers['x-request-id']);
  for (;;) {
    const line = t.logs.find((l) => l['msg'] === 'request' && l['request_id'] === id);
    if (line) return line['query'];
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a reload that adds a masked key redacts it in later log lines', { timeout: 20_000 }, async () => {
  const log = t.gw.logger;
  log.warn({ session_key: 'SK-1', contact: 'CT-before', upstream: { contact: 'CT-before-nested' } }, 'before reload');
  assert.equal(await accessQuery('/api/x?contact=CT-query-before'), 'contact=CT-query-before');
  const first = lineWith('before reload');
  assert.equal(first['session_key'], '[redacted]');
  assert.equal(first['contact'], 'CT-before', 'not masked by the first policy');

  writeFileSync(join(t.ctx.dir, 'gateway.yaml'), policy(t.ctx, ['session_key', 'contact']));
  const result = await t.gw.reload();
  assert.equal(result.ok, true);

  log.warn({ contact: 'CT-after', upstream: { contact: 'CT-after-nested', user: { contact: 'CT-after-deep' } } }, 'after reload');
  const later = lineWith('after reload');
  assert.equal(later['contact'], '[redacted]');
  assert.equal(later['upstream'].contact, '[redacted]');
  assert.equal(later['upstream'].user.contact, '[redacted]');
  assert.equal(await accessQuery('/api/x?contact=CT-query-after'), 'contact=[redacted]', "the gateway's own access line follows too");
  assert.ok(!/CT-after|CT-query-after/.test(t.logText()));
});

test('an error message quoting a phone number is scrubbed', () => {
  t.gw.logger.error({ err: new Error('upstream answered {"contact":"CT-err","tel":"13812345678"}') }, 'request failed');
  const line = lineWith('request failed');
  assert.equal(line['err'].message, 'upstream answered {"contact":"[redacted]","tel":"138****5678"}');
  assert.ok(!line['err'].stack.includes('13812345678'));
  assert.ok(!t.logText().includes('13812345678'));
});
