// One self-contained HTML file: a summary a manager can read (each pattern passed or failed, in
// words), then every finding with its evidence and fix. No script, no external reference; every
// string from the target or the policy is escaped.

import { ruleOf, type Finding, type Level, type ScanReport } from './report.js';
import { PATTERN_WHY } from './rules.js';
import { byPattern, counts, passed, requestLine, VERSION, type Verdict } from './summary.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const VERDICT_TEXT: Record<Verdict, string> = { fail: 'Fails', warn: 'Needs attention', pass: 'Passes', 'not checked': 'Not checked' };
const LEVEL_TEXT: Record<Level, string> = { error: 'error', warning: 'warning', note: 'note', pass: 'ok' };

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%}td,th{padding:.4rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.fail,.error{color:#b00020}.warn,.warning{color:#9a6700}.pass{color:#1a7f37}.note,.not-checked{color:#555}
.verdict{font-weight:600;white-space:nowrap}pre{white-space:pre-wrap;background:#f6f8fa;padding:.5rem;margin:.3rem 0;font-size:13px}
.big{font-size:1.2rem;font-weight:600}`;

export function renderHtml(report: ScanReport): string {
  const e = escapeHtml;
  const c = counts(report);
  const ok = passed(report);
  const sections = byPattern(report);
  const scanned = [report.target && `the endpoint ${report.target}`, report.policy && `the policy ${report.policy}`].filter(Boolean).join(' and ');
  const rows = sections
    .map((s) => `<tr><td>${s.pattern}</td><td>${e(s.title)}<br><small>${e(PATTERN_WHY[s.pattern])}</small></td><td class="verdict ${s.verdict.replace(' ', '-')}">${VERDICT_TEXT[s.verdict]}</td><td>${s.findings.filter((f) => f.level === 'error' || f.level === 'warning').length}</td></tr>`)
    .join('\n');
  const details = sections
    .filter((s) => s.findings.length > 0)
    .map((s) => `<h3>${s.pattern}. ${e(s.title)}</h3>\n<table>\n${s.findings.map(findingRow).join('\n')}\n</table>`)
    .join('\n');
  const req = requestLine(report);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>wxgw scan report</title><style>${STYLE}</style></head>
<body>
<h1>wxgw scan report</h1>
<p>What was scanned: ${e(scanned || 'nothing')}. wxgw ${e(VERSION)}.</p>
<p class="big ${ok ? 'pass' : 'fail'}">${ok ? 'Passed: none of the known failure patterns was found.' : `Failed: ${c.error} problem(s) that get mini-program backends banned or abused, and ${c.warning} weakness(es).`}</p>
<h2>Summary</h2>
<table><tr><th>#</th><th>Pattern</th><th>Verdict</th><th>Problems</th></tr>
${rows}
</table>
${req ? `<p>${e(req)}</p>` : ''}
<h2>Details</h2>
${details}
</body></html>
`;
}

function findingRow(f: Finding): string {
  const e = escapeHtml;
  const where = f.location ? `${f.location.file}:${f.location.line}:${f.location.col}` : (f.url ?? '');
  const evidence = f.evidence.length > 0 ? `<pre>${e(f.evidence.join('\n'))}</pre>` : '';
  const fix = f.level === 'error' || f.level === 'warning' ? `<div>Fix: ${e(ruleOf(f).fix)}</div>` : '';
  return `<tr><td class="verdict ${f.level}">${LEVEL_TEXT[f.level]}</td><td><code>${e(f.rule)}</code><br><small>${e(where)}</small></td><td>${e(f.message)}${evidence}${fix}</td></tr>`;
}
