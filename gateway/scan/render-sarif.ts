// SARIF 2.1.0 for CI code scanning: one run, the rule catalogue as the driver's rules, and a
// result per finding that is not a pass. Policy findings carry the file and line; probe
// findings name the URL as a logical location (there is no file to point at).

import { isAbsolute, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Finding, type Level, type ScanReport } from './report.js';
import { RULES } from './rules.js';
import { VERSION } from './summary.js';

const SARIF_LEVEL: Record<Exclude<Level, 'pass'>, 'error' | 'warning' | 'note'> = { error: 'error', warning: 'warning', note: 'note' };

/** Relative to the working directory (the repository, in CI) when inside it, else a file: URI. */
function uri(file: string): string {
  const rel = relative(process.cwd(), resolve(file));
  if (rel.startsWith('..') || isAbsolute(rel)) return pathToFileURL(resolve(file)).href;
  return rel.split(sep).join('/');
}

export function renderSarif(report: ScanReport): string {
  const rules = [...RULES.values()];
  const index = new Map(rules.map((r, i) => [r.id, i]));
  const results = report.findings
    .filter((f): f is Finding & { level: Exclude<Level, 'pass'> } => f.level !== 'pass')
    .map((f) => ({
      ruleId: f.rule,
      ruleIndex: index.get(f.rule)!,
      level: SARIF_LEVEL[f.level],
      message: { text: [f.message, ...f.evidence].join('\n') },
      locations: [
        f.location
          ? { physicalLocation: { artifactLocation: { uri: uri(f.location.file) }, region: { startLine: f.location.line, startColumn: f.location.col } } }
          : { logicalLocations: [{ name: f.url ?? report.target ?? 'target', kind: 'resource' }] },
      ],
    }));
  const log = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'wxgw-scan',
            version: VERSION,
            rules: rules.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.summary },
              fullDescription: { text: r.summary },
              help: { text: r.fix },
              defaultConfiguration: { level: r.pattern === 6 || r.id === 'WX3-CORS-WILDCARD' ? 'warning' : 'error' },
              properties: { pattern: r.pattern },
            })),
          },
        },
        results,
        properties: { target: report.target ?? null, policy: report.policy ?? null, requests: report.requests ?? null },
      },
    ],
  };
  return JSON.stringify(log, null, 2) + '\n';
}
