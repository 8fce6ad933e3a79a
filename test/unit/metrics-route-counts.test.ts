// A route's per-request counts are added up in RouteMetrics and handed to prom-client when the
// registry is read: every read must show exactly what was counted until then, cumulatively, with
// the same series (a route that sent 0 bytes still has its series at 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../gateway/observability/metrics.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('requests and body bytes counted per request show exactly, read after read', async () => {
  const metrics = new Metrics(() => [], () => ({ kind: 'memory', connected: true }));
  const api = metrics.route('api');
  for (let i = 0; i < 3; i++) api.request('GET', 200);
  api.request('POST', 201);
  api.request('BREW', 503);
  api.bytesIn.inc(10);
  api.bytesOut.inc(1000);
  api.bytesOut.inc(24);
  const none = metrics.route(undefined);
  none.request('GET', 404);
  none.bytesIn.inc(0);
  none.bytesOut.inc(0);

  let text = await metrics.registry.metrics();
  assert.equal(sample(text, 'wxgw_requests_total{route="api",method="GET",status_class="2xx"}'), 3);
  assert.equal(sample(text, 'wxgw_requests_total{route="api",method="POST",status_class="2xx"}'), 1);
  assert.equal(sample(text, 'wxgw_requests_total{route="api",method="OTHER",status_class="5xx"}'), 1);
  assert.equal(sample(text, 'wxgw_requests_total{route="(none)",method="GET",status_class="4xx"}'), 1);
  assert.equal(sample(text, 'wxgw_request_bytes_total{route="api"}'), 10);
  assert.equal(sample(text, 'wxgw_response_bytes_total{route="api"}'), 1024);
  assert.equal(sample(text, 'wxgw_request_bytes_total{route="(none)"}'), 0);
  assert.equal(sample(text, 'wxgw_response_bytes_total{route="(none)"}'), 0);

  api.request('GET', 200);
  api.bytesOut.inc(6);
  text = await metrics.registry.metrics();
  assert.equal(sample(text, 'wxgw_requests_total{route="api",method="GET",status_class="2xx"}'), 4);
  assert.equal(sample(text, 'wxgw_response_bytes_total{route="api"}'), 1030);
  // A read with nothing new changes nothing.
  text = await metrics.registry.metrics();
  assert.equal(sample(text, 'wxgw_requests_total{route="api",method="GET",status_class="2xx"}'), 4);
  assert.equal(sample(text, 'wxgw_response_bytes_total{route="api"}'), 1030);
  // The JSON form (what a cluster worker sends the primary) is flushed alike.
  api.request('GET', 200);
  const json = await metrics.registry.getMetricsAsJSON();
  const requests = json.find((m) => m.name === 'wxgw_requests_total')!;
  assert.equal(requests.values.find((v) => v.labels.route === 'api' && v.labels.method === 'GET' && v.labels.status_class === '2xx')?.value, 5);
});
