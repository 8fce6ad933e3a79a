// The shadow log line is rate-limited per route and decision on an injected clock, while the
// metric counts every decision and the access line gets the request's whole list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../gateway/observability/logger.js';
import { Metrics } from '../../gateway/observability/metrics.js';
import { ShadowLog } from '../../gateway/observability/shadow-log.js';

function setup() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const metrics = new Metrics(() => [], () => ({ kind: 'memory', connected: true }));
  let clock = 1_000_000;
  const log = new ShadowLog(createLogger({ destination: sink }), metrics, () => clock);
  return { lines, metrics, log, advance: (ms: number) => (clock += ms) };
}

const req = (id: string, shadow?: string[], maskReport?: { keys: string[]; detectors: string[]; headers: string[]; failed?: string }) => ({ id, route: 'api', shadow, maskReport });

test('one line at once, then at most one a minute with how many were not logged; every decision counted', async () => {
  const { lines, metrics, log, advance } = setup();
  assert.deepEqual(log.record(req('a', ['rate_limit:rate_limited'])), ['rate_limit:rate_limited']);
  log.record(req('b', ['rate_limit:rate_limited']));
  log.record(req('c', ['rate_limit:rate_limited', 'allow:ip_not_allowed']));
  advance(60_000);
  log.record(req('d', ['rate_limit:rate_limited']));
  await new Promise((r) => setImmediate(r));
  const shown = lines.filter((l) => l.rule !== undefined).map((l) => [l.request_id, l.rule, l.suppressed]);
  assert.deepEqual(shown, [['a', 'rate_limit', 0], ['c', 'allow', 0], ['d', 'rate_limit', 2]]);
  const text = await metrics.registry.metrics();
  assert.match(text, /wxgw_shadow_decisions_total\{route="api",rule="rate_limit",reason="rate_limited"\} 4/);
  assert.match(text, /wxgw_shadow_decisions_total\{route="api",rule="allow",reason="ip_not_allowed"\} 1/);
});

test('mask findings become mask:masked or mask:mask_failed, and nothing when the profile would have done nothing', () => {
  const { log } = setup();
  assert.deepEqual(log.record(req('a', undefined, { keys: ['phone'], detectors: [], headers: [] })), ['mask:masked']);
  assert.deepEqual(log.record(req('b', ['cors:cors_origin_not_allowed'], { keys: [], detectors: [], headers: [], failed: 'the body is not JSON' })), ['cors:cors_origin_not_allowed', 'mask:mask_failed']);
  assert.equal(log.record(req('c', undefined, { keys: [], detectors: [], headers: [] })), undefined);
});
