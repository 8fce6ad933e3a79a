// The shipped alert rules pass `promtool check rules`, and the dashboard is one Grafana can import:
// every panel queries Prometheus through the datasource variable. (That every name they query is
// served is checked against a running gateway in test/integration/metrics-ops.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../gateway/package-root.js';
import { promtool, queriedNames } from '../helpers/metrics-text.js';

const DIR = join(PACKAGE_ROOT, 'docker/observability');

test('the alert rules pass promtool check rules', async () => {
  const check = await promtool(['check', 'rules', join(DIR, 'wxgw-alerts.yaml')]);
  assert.equal(check.code, 0, check.output);
  assert.match(check.output, /SUCCESS: 9 rules found/);
});

test('promtool check rules refuses a broken rule (the check above can fail)', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'wxgw-rules-')), 'bad.yaml');
  writeFileSync(file, 'groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(wxgw_requests_total[5m]\n');
  const check = await promtool(['check', 'rules', file]);
  assert.notEqual(check.code, 0, check.output);
});

test('every dashboard panel queries wxgw_ metrics through the datasource variable', () => {
  const dashboard = JSON.parse(readFileSync(join(DIR, 'wxgw-dashboard.json'), 'utf8')) as {
    uid: string;
    panels: { title: string; datasource: { uid: string }; targets: { expr: string; datasource: { uid: string } }[] }[];
  };
  assert.equal(dashboard.uid, 'wxgw');
  assert.ok(dashboard.panels.length >= 15);
  const titles = new Set<string>();
  for (const p of dashboard.panels) {
    assert.ok(!titles.has(p.title), `two panels titled ${p.title}`);
    titles.add(p.title);
    assert.equal(p.datasource.uid, '${datasource}', p.title);
    assert.ok(p.targets.length > 0, p.title);
    for (const t of p.targets) {
      assert.equal(t.datasource.uid, '${datasource}', p.title);
      assert.ok(queriedNames(t.expr).length > 0, `${p.title}: ${t.expr}`);
    }
  }
});

test('queriedNames finds every wxgw_ name in an expression, histogram suffixes included', () => {
  assert.deepEqual(
    queriedNames('histogram_quantile(0.99, sum by (le) (rate(wxgw_request_duration_seconds_bucket[5m]))) / on() wxgw_ready'),
    ['wxgw_request_duration_seconds_bucket', 'wxgw_ready'],
  );
});
