// The report as one JSON document, for scripts: every finding with its rule, pattern and fix.

import { ruleOf, type ScanReport } from './report.js';
import { counts, passed, VERSION } from './summary.js';

export function renderJson(report: ScanReport): string {
  return (
    JSON.stringify(
      {
        tool: { name: 'wxgw scan', version: VERSION },
        target: report.target ?? null,
        policy: report.policy ?? null,
        result: passed(report) ? 'pass' : 'fail',
        summary: counts(report),
        requests: report.requests ?? null,
        findings: report.findings.map((f) => {
          const r = ruleOf(f);
          return { rule: f.rule, pattern: r.pattern, level: f.level, message: f.message, evidence: f.evidence, location: f.location ?? null, url: f.url ?? null, fix: r.fix };
        }),
      },
      null,
      2,
    ) + '\n'
  );
}
