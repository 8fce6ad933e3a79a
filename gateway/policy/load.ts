// Policy file -> PolicyConfig, or a PolicyError listing every problem at once. The steps:
// YAML with positions, ${...} references, the JSON Schema, checks across values and files,
// then the typed config. Each step stays quiet about what an earlier one already reported.

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { buildConfig } from './build.js';
import { osReason } from './files.js';
import { interpolate } from './interpolate.js';
import { isWithin, toPointer, type KeyPath } from './key-path.js';
import { Reporter, type Finding } from './report.js';
import { checkSchema } from './schema-check.js';
import { warnLiteralSecrets } from './secrets.js';
import { checkSemantics } from './semantic.js';
import { PolicyError, type Diagnostic, type FileReference, type PolicyConfig } from '../types/policy.js';
import { readYaml } from './yaml-source.js';

export interface LoadOptions {
  /** Where ${NAME} references are looked up; process.env by default. */
  env?: Record<string, string | undefined>;
  /** On a reload, what the policy in force read from files: kept for a ${file:...} that cannot be read now. */
  previous?: ReadonlyMap<string, FileReference>;
}

export interface LoadedPolicy {
  config: PolicyConfig;
  warnings: Diagnostic[];
}

/** Drops findings under already reported places, and absences a did-you-mean already explains. */
function fresh(findings: Finding[], suggested: readonly KeyPath[], ...reported: (readonly KeyPath[])[]): Diagnostic[] {
  const all = reported.flat();
  const explained = new Set(suggested.map(toPointer));
  return findings
    .filter((f) => !all.some((at) => isWithin(f.at, at)))
    .filter((f) => !f.missing?.some((at) => explained.has(toPointer(at))))
    .map((f) => f.diagnostic);
}

/** Sorted by position; a value reached twice (through an alias) is reported once. */
function finish(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics
    .filter((d) => {
      const id = `${d.line}:${d.col} ${d.severity} ${d.message}`;
      return !seen.has(id) && seen.add(id);
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

/**
 * Validates policy text as if read from `file` (relative paths in it start from the file's
 * directory; messages name `file` as given). Throws PolicyError when anything is wrong.
 */
export async function parsePolicyText(text: string, file: string, opts: LoadOptions = {}): Promise<LoadedPolicy> {
  const source = readYaml(text, file);
  if (source.broken) throw new PolicyError(finish(source.diagnostics));

  const absolute = resolve(file);
  const baseDir = dirname(absolute);
  const { data, locator } = source;
  const references = new Reporter(file, locator);
  const { referenced, failed, files } = await interpolate(data, { env: opts.env ?? process.env, baseDir, ...(opts.previous && { previous: opts.previous }) }, references);

  const structure = new Reporter(file, locator);
  const { unknownKeys, badValues, suggested } = checkSchema(data, failed, structure);

  const meaning = new Reporter(file, locator);
  await checkSemantics(data, baseDir, meaning);
  warnLiteralSecrets(data, referenced, meaning);

  const diagnostics = finish([
    ...source.diagnostics,
    ...fresh(references.findings, [], unknownKeys),
    ...fresh(structure.findings, suggested),
    ...fresh(meaning.findings, suggested, unknownKeys, badValues, failed),
  ]);
  if (diagnostics.some((d) => d.severity === 'error')) throw new PolicyError(diagnostics);
  const config = buildConfig(data, { file: absolute, shownFile: file, baseDir, locator });
  if (files.size > 0) config.file_references = files;
  return { config, warnings: diagnostics };
}

/** Reads and validates the policy file. Throws PolicyError, an unreadable file included. */
export async function loadPolicy(file: string, opts: LoadOptions = {}): Promise<LoadedPolicy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new PolicyError([
      { severity: 'error', file, line: 1, col: 1, path: '', message: `cannot read the policy file: ${osReason(err)}` },
    ]);
  }
  return parsePolicyText(text, file, opts);
}
