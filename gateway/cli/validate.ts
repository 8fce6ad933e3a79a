// `wxgw validate`: the policy, its references and files, its certificates and its guards, all
// checked in one pass, reported as text for people or as one JSON document for tools.
//
//   checkPolicy(file) -> Verdict     render as text (stderr/stdout) or JSON (stdout)

import { compileCheck } from '../main.js';
import { loadPolicy } from '../policy/load.js';
import { reportModeRules } from '../policy/report-mode.js';
import { shownPath } from '../shown-path.js';
import { loadCertificates } from '../tls/load.js';
import { PolicyError, formatDiagnostic, type Diagnostic, type PolicyConfig } from '../types/policy.js';

export const FORMATS = ['text', 'json'] as const;
export type Format = (typeof FORMATS)[number];

interface ReportModeLine {
  file: string;
  line: number;
  route: string;
  rules: string[];
}

/** What a validate found; `config` only when the policy would start. */
interface Verdict {
  diagnostics: Diagnostic[];
  config?: PolicyConfig;
  certificates: number;
}

function bySource(diagnostics: Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => a.line - b.line || a.col - b.col);
}

async function checkPolicy(file: string): Promise<Verdict> {
  try {
    const { config, warnings } = await loadPolicy(file);
    const { certificates, diagnostics } = loadCertificates(config.tls);
    const all = bySource([...warnings, ...diagnostics]);
    if (all.some((d) => d.severity === 'error')) return { diagnostics: all, certificates: certificates.length };
    try {
      await compileCheck({ config, certificates, warnings: [] });
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      return { diagnostics: bySource([...all, ...err.diagnostics]), certificates: certificates.length };
    }
    return { diagnostics: all, config, certificates: certificates.length };
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    // The TLS section was sound: its certificates are checked now rather than after a fix.
    const more = err.tls ? loadCertificates(err.tls).diagnostics : [];
    return { diagnostics: bySource([...err.diagnostics, ...more]), certificates: 0 };
  }
}

function reportMode(config: PolicyConfig | undefined): ReportModeLine[] {
  if (!config) return [];
  return reportModeRules(config).map((e) => ({ file: shownPath(e.pos.file), line: e.pos.line, route: e.route, rules: [...e.rules] }));
}

const shown = (d: Diagnostic): Diagnostic => ({ ...d, file: shownPath(d.file) });

/** The stable shape of `--format json`: {ok, errors, warnings, report_mode}; README documents it. */
function renderJson(v: Verdict): string {
  const field = (d: Diagnostic) => {
    const { file, line, col, path, message, severity } = shown(d);
    return { file, line, col, path, message, severity };
  };
  const doc = {
    ok: v.config !== undefined,
    errors: v.diagnostics.filter((d) => d.severity === 'error').map(field),
    warnings: v.diagnostics.filter((d) => d.severity !== 'error').map(field),
    report_mode: reportMode(v.config),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function renderText(file: string, v: Verdict, out: { stdout: (s: string) => void; stderr: (s: string) => void }): void {
  for (const d of v.diagnostics) out.stderr(formatDiagnostic(shown(d)) + '\n');
  if (!v.config) {
    const errors = v.diagnostics.filter((d) => d.severity === 'error').length;
    out.stderr(`${file}: ${errors} error${errors === 1 ? '' : 's'}; the policy would not start\n`);
    return;
  }
  const { config } = v;
  out.stdout(
    `${file}: policy OK: ${config.routes.length} route(s), ${config.upstreams.size} upstream(s), ` +
      `${v.certificates} certificate chain(s) verified\n`,
  );
  // Rules in report mode are the easiest to forget once a rollout is done: listed on every validate.
  const entries = reportMode(config);
  if (entries.length === 0) return;
  out.stdout(`report mode: ${entries.length} route(s) have rules that are counted, not enforced:\n`);
  for (const e of entries) out.stdout(`  ${e.file}:${e.line}  ${e.route}: ${e.rules.join(', ')}\n`);
}

/** Exit code: 0 the policy would start, 1 it would not. */
export async function validate(file: string, format: Format): Promise<number> {
  const verdict = await checkPolicy(file);
  if (format === 'json') process.stdout.write(renderJson(verdict));
  else renderText(file, verdict, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
  return verdict.config ? 0 : 1;
}
