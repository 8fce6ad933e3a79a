// The report for a person at a terminal: each pattern's verdict, then what was found with its
// evidence and fix. Colour only on a TTY and never with NO_COLOR set (https://no-color.org).

import { ruleOf, type Finding, type Level, type ScanReport } from './report.js';
import { byPattern, counts, passed, requestLine, type Verdict } from './summary.js';

const MARK: Record<Level, string> = { error: 'FAIL', warning: 'WARN', note: 'note', pass: ' ok ' };
const COLOUR: Record<Level, string> = { error: '31', warning: '33', note: '36', pass: '32' };
const VERDICT: Record<Verdict, Level> = { fail: 'error', warn: 'warning', pass: 'pass', 'not checked': 'note' };

export function renderText(report: ScanReport, colour: boolean): string {
  const paint = (level: Level, text: string): string => (colour ? `\x1b[${COLOUR[level]}m${text}\x1b[0m` : text);
  const bold = (text: string): string => (colour ? `\x1b[1m${text}\x1b[0m` : text);
  const lines: string[] = [];
  lines.push(bold(`wxgw scan${report.target ? ` ${report.target}` : ''}${report.policy ? ` ${report.target ? 'with' : 'of'} policy ${report.policy}` : ''}`));
  for (const s of byPattern(report)) {
    lines.push('', `${paint(VERDICT[s.verdict], `[${s.verdict}]`)} ${bold(`${s.pattern}. ${s.title}`)}`);
    for (const f of s.findings) lines.push(...finding(f, paint));
    // One fix per failing rule, after its findings, instead of the same advice on every line.
    const rules = [...new Set(s.findings.filter((f) => f.level === 'error' || f.level === 'warning').map((f) => f.rule))];
    for (const id of rules) lines.push(`  ${bold('fix')} ${id}: ${ruleOf(s.findings.find((f) => f.rule === id)!).fix}`);
  }
  const c = counts(report);
  lines.push('');
  const req = requestLine(report);
  if (req) lines.push(req);
  lines.push(
    passed(report)
      ? paint('pass', `passed: no findings (${c.pass} checks passed, ${c.note} notes)`)
      : paint('error', `${c.error} error(s), ${c.warning} warning(s), ${c.note} note(s), ${c.pass} check(s) passed`),
  );
  return lines.join('\n') + '\n';
}

function finding(f: Finding, paint: (l: Level, t: string) => string): string[] {
  const where = f.location ? ` ${f.location.file}:${f.location.line}:${f.location.col}` : '';
  const out = [`  ${paint(f.level, MARK[f.level])} ${f.rule}${where}  ${f.message}`];
  for (const e of f.evidence) out.push(`         ${e}`);
  return out;
}
