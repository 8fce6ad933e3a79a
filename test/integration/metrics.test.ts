// /metrics on the admin listener: exact counts after known traffic, bounded labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../helpers/wait.js';
import { startTestGateway, type PolicyContext } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { PROTOCOLS } from '../helpers/h2-client.js';

const policy = (upstream: string, ctx: PolicyContext, apiUpstream = 'legacy'): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream}" }
  dead: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: ${apiUpstream} }
  - { name: gone, match: { path_prefix: /gone/ }, upstream: dead }
defaults: { allow: any }
`;

for (const protocol of PROTOCOLS) {
test(`/metrics counts requests by route, method and status class, decisions, upstream errors and reloads over ${protocol.name}`, async () => {
  const upstream = await startUpstream();
  const t = await startTestGateway((ctx) => policy(upstream.url, ctx));
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${t.ctx.adminPort}/metrics`)).text();
  try {
    for (let i = 0; i < 3; i++) assert.equal((await protocol.request(t.port, t.ca, { path: `/api/user/${i}?openid=o${i}` })).status, 200);
    assert.equal((await protocol.request(t.port, t.ca, { path: '/api/user', method: 'POST', body: '{}' })).status, 200);
    assert.equal((await protocol.request(t.port, t.ca, { path: '/nope' })).status, 404);
    assert.equal((await protocol.request(t.port, t.ca, { path: '/gone/x' })).status, 502);
    assert.equal((await t.gw.reload()).ok, true);
    writeFileSync(join(t.ctx.dir, 'gateway.yaml'), policy(upstream.url, t.ctx, 'missing'));
    assert.equal((await t.gw.reload()).ok, false);

    // The counters move when each answer has been sent, just after the client has it.
    let text = '';
    await eventually(
      async () => ((text = await scrape()).includes('wxgw_requests_total{route="gone",method="GET",status_class="5xx"} 1') ? true : undefined),
      'the last request in the metrics',
      { describe: () => text },
    );
    const has = (line: string): void => assert.ok(text.split('\n').includes(line), `${line}\nnot in\n${text}`);
    has('wxgw_requests_total{route="api",method="GET",status_class="2xx"} 3');
    has('wxgw_requests_total{route="api",method="POST",status_class="2xx"} 1');
    has('wxgw_requests_total{route="(none)",method="GET",status_class="4xx"} 1');
    has('wxgw_requests_total{route="gone",method="GET",status_class="5xx"} 1');
    has('wxgw_decisions_total{reason="route_not_found"} 1');
    has('wxgw_decisions_total{reason="upstream_unavailable"} 1');
    has('wxgw_decisions_total{reason="ip_not_allowed"} 0');
    has('wxgw_upstream_errors_total{route="gone",reason="upstream_unavailable"} 1');
    has('wxgw_request_duration_seconds_count{route="api"} 4');
    has('wxgw_upstream_duration_seconds_count{route="api"} 4');
    has('wxgw_upstream_duration_seconds_count{route="gone"} 1');
    has('wxgw_reloads_total{result="success"} 1');
    has('wxgw_reloads_total{result="invalid"} 1');
    has('wxgw_reloads_total{result="restart_required"} 0');
    has(`wxgw_build_info{version="0.1.0",node_version="${process.version}"} 1`);
    has('wxgw_store_up{kind="memory"} 1');
    const expiry = new RegExp(`^wxgw_certificate_expiry_seconds\\{certificate="${t.ctx.chain.fullchain}"\\} (\\d+)$`, 'm').exec(text);
    assert.ok(expiry && Number(expiry[1]) > 86_400, 'seconds until the leaf expires');
    // Bounded labels: no path, query or openid ever becomes a label value.
    assert.doesNotMatch(text, /\/api\/user|\/nope|openid|o1/);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    const ready = await fetch(`http://127.0.0.1:${t.ctx.adminPort}/readyz`);
    assert.equal(ready.status, 200, 'a failed reload leaves the last good policy serving');
  } finally {
    await t.close();
    await upstream.close();
  }
});
}
