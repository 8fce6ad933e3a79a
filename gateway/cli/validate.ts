// `wxgw validate`: the policy, its references and files, its certificates and its guards, checked
// as `wxgw start` checks them (loadChecked: every error in one pass), reported as text for people
// or as one JSON document for tools.
//
//   checkPolicy(file) -> Verdict     render as text (stderr/stdout) or JSON (stdout)

import { compileCheck, loadChecked, type LoadedPolicy } from '../main.js';
import { reportModeRules } from '../policy/report-mode.js';
import { shownPath } from '../shown-path.js';
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

async function checkPolicy(file: string): Promise<Verdict> {
  let loaded: LoadedPolicy;
  try {
    loaded = await loadChecked(file);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return { diagnostics: err.diagnostics, certificates: 0 };
  }
  const { config, certificates, warnings } = loaded;
  try {
    // Some problems (a key a crypto library refuses) only show when the guards are built.
    await compileCheck({ ...loaded, warnings: [] });
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return { diagnostics: [...warnings, ...err.diagnostics], certificates: certificates.length };
  }
  return { diagnostics: warnings, config, certificates: certificates.length };
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
