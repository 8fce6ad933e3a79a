// The operations metrics move as traffic flows: refusals by route and reason, TLS handshakes and
// their failures, bytes by route, open connections up and down, store latency. What the gateway
// serves passes `promtool check metrics` without a warning, and every name the shipped dashboard
// and alert rules query is in it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { parse } from 'yaml';
import { PACKAGE_ROOT } from '../../gateway/package-root.js';
import { eventually } from '../helpers/wait.js';
import { startTestGateway, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { families, promtool, queriedNames, sample, served } from '../helpers/metrics-text.js';

const policy = (upstream: string, ctx: PolicyContext): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  limits: { handshake_timeout: 60s }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy, rate_limit: { key: ip, limit: 1000, window: 60s } }
  - { name: office, match: { path_prefix: /office/ }, upstream: legacy, allow: [10.0.0.0/8] }
defaults: { allow: any }
`;

const DIR = join(PACKAGE_ROOT, 'docker/observability');

/** Every expression of the shipped dashboard (panels and template variables) and alert rules. */
function shippedExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(join(DIR, 'wxgw-dashboard.json'), 'utf8')) as {
    panels: { targets: { expr: string }[] }[];
    templating: { list: { query?: unknown }[] };
  };
  const rules = parse(readFileSync(join(DIR, 'wxgw-alerts.yaml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] };
  return [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    ...dashboard.templating.list.map((v) => JSON.stringify(v.query ?? '')),
    ...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)),
  ];
}

test('refusals by route, TLS failures, bytes, open connections and store latency move with traffic; promtool accepts the text; the dashboard and rules ask only for served names', async () => {
  const upstream = await startUpstream();
  const t = await startTestGateway((ctx) => policy(upstream.url, ctx)).catch(async (err: unknown) => {
    await upstream.close();
    throw err;
  });
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${t.ctx.adminPort}/metrics`)).text();
  const held: Socket[] = [];
  try {
    const body = 'x'.repeat(1000);
    const ok = await httpsRequest(t.port, t.ca, { path: '/api/echo', method: 'POST', body });
    assert.equal(ok.status, 200);
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/office/x' })).status, 403);
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/nowhere' })).status, 404);
    // The redirect listener refuses a Host the gateway does not serve; redirects are no refusals.
    const plain = (host: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: t.ctx.httpPort, path: '/x', headers: { host }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await plain('elsewhere.example'), 400);
    assert.equal(await plain('localhost'), 308);

    // A hello that is not TLS, and a client that refuses the certificate served for a name no
    // certificate covers (Node's client hangs up mid-handshake).
    await new Promise<void>((resolve) => {
      const s = tcpConnect(t.port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
    await new Promise<void>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: t.port, servername: 'wrong.example', ca: t.ca });
      s.on('error', () => resolve());
      s.on('secureConnect', () => resolve());
    });

    let text = '';
    const seen = (series: string, want: (v: number) => boolean): Promise<number> =>
      eventually(
        async () => {
          text = await scrape();
          const v = sample(text, series);
          return v !== undefined && want(v) ? v : undefined;
        },
        series,
        { describe: () => text },
      );
    await seen('wxgw_refusals_total{route="office",reason="ip_not_allowed"}', (v) => v === 1);
    await seen('wxgw_refusals_total{route="(none)",reason="route_not_found"}', (v) => v === 1);
    await seen('wxgw_refusals_total{route="(none)",reason="https_required"}', (v) => v === 1);
    assert.equal(sample(text, 'wxgw_refusals_total{route="(none)",reason="redirect"}'), undefined);
    assert.equal(sample(text, 'wxgw_refusals_total{route="api",reason="ip_not_allowed"}'), undefined, 'a route that refused nothing has no refusal series');
    await seen('wxgw_tls_handshake_failures_total{reason="protocol"}', (v) => v === 1);
    await seen('wxgw_tls_handshake_failures_total{reason="client_closed"}', (v) => v === 1);
    assert.equal(sample(text, 'wxgw_tls_handshake_failures_total{reason="timeout"}'), 0);
    assert.equal(sample(text, 'wxgw_tls_handshakes_total{protocol="TLSv1.3"}'), 3, 'the three requests');
    // Body bytes, as the access line counts them: the 1000 sent, the upstream's echo back.
    assert.equal(sample(text, 'wxgw_request_bytes_total{route="api"}'), 1000);
    assert.equal(sample(text, 'wxgw_response_bytes_total{route="api"}'), Buffer.byteLength(ok.text));
    assert.equal(sample(text, 'wxgw_store_operation_duration_seconds_count{kind="memory",operation="hit"}'), 1, 'the rate-limited request');
    assert.equal(sample(text, 'wxgw_ready'), 1);

    // Connections still in their handshake count too; they go away when closed.
    for (let i = 0; i < 3; i++) {
      const s = tcpConnect(t.port, '127.0.0.1');
      s.on('error', () => {});
      held.push(s);
    }
    await seen('wxgw_connections_open{listener="https"}', (v) => v === 3);
    for (const s of held) s.destroy();
    await seen('wxgw_connections_open{listener="https"}', (v) => v === 0);
    assert.ok(sample(text, 'wxgw_connections_open{listener="admin"}')! >= 1, 'the scrape itself');

    const check = await promtool(['check', 'metrics'], text);
    assert.equal(check.code, 0, check.output);
    assert.equal(check.output.trim(), '', `promtool warns:\n${check.output}`);

    const declared = families(text);
    const missing = shippedExpressions().flatMap(queriedNames).filter((name) => !served(name, declared));
    assert.deepEqual(missing, [], 'names the dashboard or the alert rules query that /metrics does not serve');
  } finally {
    for (const s of held) s.destroy();
    await t.close();
    await upstream.close();
  }
});
