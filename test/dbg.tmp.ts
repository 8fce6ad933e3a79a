import { startTestGateway } from './helpers/gateway.js';
import { httpsRequest } from './helpers/https-client.js';
import { startUpstream } from './helpers/upstream.js';
const up = await startUpstream();
const t = await startTestGateway((ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${up.url}" }
routes:
  - { name: all, match: { path_prefix: /api/ }, upstream: legacy }
`);
const body = Buffer.alloc(60 * 1024, 'a').toString() + 'END';
for (const headers of [{ 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, { 'transfer-encoding': 'chunked', expect: '100-continue' }]) {
  try {
  const r = await httpsRequest(t.port, t.ca, { path: '/api/x', method: 'POST', body, headers, timeoutMs: 2000 });
  console.log(JSON.stringify(headers), r.status, r.text.slice(0, 100));
  } catch (e) { console.log(JSON.stringify(headers), String(e)); }
}
await t.close(); await up.close();
