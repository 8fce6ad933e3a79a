// What every renderer says the same way: the counts, each pattern's verdict, the tool's version.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';
import { failing, ruleOf, type Finding, type Level, type ScanReport } from './report.js';
import { PATTERNS, type Pattern } from './rules.js';

export const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export type Verdict = 'fail' | 'warn' | 'pass' | 'not checked';

export interface PatternSummary {
  pattern: Pattern;
  title: string;
  verdict: Verdict;
  findings: Finding[];
}

const ORDER: Record<Level, number> = { error: 0, warning: 1, note: 2, pass: 3 };

export function byPattern(report: ScanReport): PatternSummary[] {
  return (Object.keys(PATTERNS).map(Number) as Pattern[])
    .map((pattern) => {
      const findings = report.findings.filter((f) => ruleOf(f).pattern === pattern).sort((a, b) => ORDER[a.level] - ORDER[b.level]);
      const verdict: Verdict = findings.some((f) => f.level === 'error')
        ? 'fail'
        : findings.some((f) => f.level === 'warning')
          ? 'warn'
          : findings.some((f) => f.level === 'pass')
            ? 'pass'
            : 'not checked';
      return { pattern, title: PATTERNS[pattern], verdict, findings };
    })
    .filter((s) => s.pattern !== 0 || s.findings.length > 0);
}

export function counts(report: ScanReport): Record<Level, number> {
  const out: Record<Level, number> = { error: 0, warning: 0, note: 0, pass: 0 };
  for (const f of report.findings) out[f.level]++;
  return out;
}

export function requestLine(report: ScanReport): string | undefined {
  const r = report.requests;
  if (!r) return undefined;
  return `requests sent: ${r.http + r.tls} (${r.http} HTTP requests, ${r.tls} TLS handshakes; cap ${r.cap}${r.capped ? ', reached' : ''})`;
}

export function passed(report: ScanReport): boolean {
  return failing(report).length === 0;
}
