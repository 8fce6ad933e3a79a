// The scan's result, filled by the probes and the policy lint, read by the renderers.
//
//   error: one of the failure patterns holds; warning: weaker than it should be; note: said for
//   information (a probe could not run, a limit that was not reached); pass: checked and fine.

import { rule, type Rule } from './rules.js';

export type Level = 'error' | 'warning' | 'note' | 'pass';

export interface Location {
  file: string;
  line: number;
  col: number;
}

export interface Finding {
  rule: string;
  level: Level;
  message: string;
  /** What was sent and seen, or the policy text; personal data already masked. */
  evidence: string[];
  /** Policy-file findings point here; probe findings name the URL instead. */
  location?: Location;
  url?: string;
}

export interface RequestCounts {
  http: number;
  tls: number;
  cap: number;
  /** True when a probe was skipped because the cap was reached. */
  capped: boolean;
}

export interface ScanReport {
  target?: string;
  policy?: string;
  findings: Finding[];
  requests?: RequestCounts;
}

export class ReportBuilder {
  readonly findings: Finding[] = [];

  add(finding: Finding): void {
    rule(finding.rule);
    this.findings.push(finding);
  }
}

/** The findings that make the scan fail (exit 1). */
export function failing(report: ScanReport): Finding[] {
  return report.findings.filter((f) => f.level === 'error' || f.level === 'warning');
}

export function ruleOf(f: Finding): Rule {
  return rule(f.rule);
}
