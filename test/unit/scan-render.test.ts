// The renderers on one synthetic report: the text report's colour rules, SARIF's structure, the
// HTML's escaping, and the exit-code rule (warnings fail, notes and passes do not).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHtml, escapeHtml } from '../../gateway/scan/render-html.js';
import { renderSarif } from '../../gateway/scan/render-sarif.js';
import { renderText } from '../../gateway/scan/render-text.js';
import { renderJson } from '../../gateway/scan/render-json.js';
import { passed } from '../../gateway/scan/summary.js';
import { RULES } from '../../gateway/scan/rules.js';
import type { ScanReport } from '../../gateway/scan/report.js';
import { externalReferences, sarifErrors, scanJsonErrors } from '../helpers/scan-schemas.js';

const EVIL = `<img src=x onerror="alert('x')">&amp;`;

const report: ScanReport = {
  target: 'https://api.example.test',
  policy: 'config/gw.yaml',
  requests: { http: 40, tls: 9, cap: 300, capped: false },
  findings: [
    { rule: 'WX1-CHAIN', level: 'error', message: `chain incomplete ${EVIL}`, evidence: [`served #1: ${EVIL}`], url: 'https://api.example.test:443/' },
    { rule: 'WX2-HSTS', level: 'warning', message: 'short', evidence: [], location: { file: 'config/gw.yaml', line: 30, col: 11 } },
    { rule: 'WX5-NO-RATE-LIMIT', level: 'note', message: 'not reached', evidence: [] },
    { rule: 'WX3-CORS-CREDENTIALS', level: 'pass', message: 'fine', evidence: [] },
  ],
};

test('text: colour only when asked, one fix per failing rule, the request total', () => {
  const plain = renderText(report, false);
  assert.ok(!plain.includes('\x1b['));
  assert.match(plain, /requests sent: 49 \(40 HTTP requests, 9 TLS handshakes; cap 300\)/);
  assert.match(plain, /WARN WX2-HSTS config\/gw\.yaml:30:11  short/);
  assert.equal(plain.split('fix WX1-CHAIN').length, 2);
  assert.ok(renderText(report, true).includes('\x1b[31m'));
});

test('exit rule: errors and warnings fail, notes and passes do not', () => {
  assert.equal(passed(report), false);
  assert.equal(passed({ findings: report.findings.filter((f) => f.level === 'note' || f.level === 'pass') }), true);
  assert.equal(passed({ findings: report.findings.filter((f) => f.level === 'warning') }), false);
});

test('json fits its schema; sarif fits SARIF 2.1.0 with every rule and no passes', () => {
  assert.equal(scanJsonErrors(JSON.parse(renderJson(report))), '');
  const sarif = JSON.parse(renderSarif(report)) as { version: string; runs: { tool: { driver: { rules: { id: string }[] } }; results: { ruleId: string; level: string; locations: unknown[] }[] }[] };
  assert.equal(sarifErrors(sarif), '');
  assert.equal(sarif.version, '2.1.0');
  assert.deepEqual(sarif.runs[0]!.tool.driver.rules.map((r) => r.id), [...RULES.keys()]);
  assert.deepEqual(sarif.runs[0]!.results.map((r) => [r.ruleId, r.level]), [['WX1-CHAIN', 'error'], ['WX2-HSTS', 'warning'], ['WX5-NO-RATE-LIMIT', 'note']]);
  assert.deepEqual(sarif.runs[0]!.results[1]!.locations, [{ physicalLocation: { artifactLocation: { uri: 'config/gw.yaml' }, region: { startLine: 30, startColumn: 11 } } }]);
  // The check itself can fail: a result without a message is caught.
  assert.notEqual(sarifErrors({ version: '2.1.0', runs: [{ tool: { driver: { name: 'x' } }, results: [{ ruleId: 'a' }] }] }), '');
});

test('html: every string escaped, nothing external', () => {
  const html = renderHtml(report);
  assert.ok(!html.includes(EVIL));
  assert.ok(html.includes(escapeHtml(EVIL)));
  assert.equal(escapeHtml(`<"'&>`), '&lt;&quot;&#39;&amp;&gt;');
  assert.deepEqual(externalReferences(html), []);
  assert.deepEqual(externalReferences('<p><img src="x"></p>'), ['<img src="x">'], 'the check finds what it looks for');
  assert.match(html, /Failed: 1 problem\(s\)/);
});
