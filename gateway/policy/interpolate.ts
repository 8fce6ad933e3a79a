// ${...} references in string values: `${NAME}` is an environment variable, `${file:PATH}` a
// file's content (one trailing newline dropped, as `echo` and editors add one), `$${` a literal
// `${`. Resolved values are never echoed: they may be credentials.

import { isRecord, toPointer, type KeyPath } from './key-path.js';
import { readText, resolveFrom } from './files.js';
import type { Reporter } from './report.js';

export interface InterpolateOptions {
  env: Record<string, string | undefined>;
  /** Directory relative ${file:...} paths start from: the policy file's. */
  baseDir: string;
}

export interface Interpolation {
  /** Pointers of the strings that held at least one reference. */
  referenced: Set<string>;
  /** Strings whose references could not all be resolved; they keep their raw text. */
  failed: KeyPath[];
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Resolves every reference in `data` in place; problems go to `report`. */
export async function interpolate(data: unknown, opts: InterpolateOptions, report: Reporter): Promise<Interpolation> {
  const result: Interpolation = { referenced: new Set(), failed: [] };

  async function resolveString(raw: string, at: KeyPath): Promise<string> {
    let out = '';
    let ok = true;
    let references = 0;
    for (let i = 0; i < raw.length; ) {
      if (raw.startsWith('$${', i)) {
        out += '${';
        i += 3;
        continue;
      }
      if (!raw.startsWith('${', i)) {
        out += raw[i++];
        continue;
      }
      const end = raw.indexOf('}', i + 2);
      if (end < 0) {
        report.error(at, 'unterminated `${`; close it with `}`, or write `$${` for a literal `${`');
        ok = false;
        break;
      }
      const reference = raw.slice(i + 2, end);
      const value = await lookUp(reference, at);
      references++;
      if (value === undefined) ok = false;
      else out += value;
      i = end + 1;
    }
    if (references > 0) result.referenced.add(toPointer(at));
    if (!ok) {
      result.failed.push(at);
      return raw;
    }
    return out;
  }

  async function lookUp(reference: string, at: KeyPath): Promise<string | undefined> {
    const written = `\`\${${reference}}\``;
    if (reference.startsWith('file:')) {
      const path = reference.slice('file:'.length);
      if (path === '') {
        report.error(at, `${written} names no file; write \${file:/run/secrets/NAME}`);
        return undefined;
      }
      const file = resolveFrom(opts.baseDir, path);
      const read = await readText(file);
      if (!read.ok) {
        report.error(at, `${written}: cannot read ${file}: ${read.why}`);
        return undefined;
      }
      const text = read.text.replace(/\r?\n$/, '');
      if (text === '') {
        report.error(at, `${written}: ${file} is empty`);
        return undefined;
      }
      return text;
    }
    if (!ENV_NAME.test(reference)) {
      report.error(
        at,
        `${written} is not a reference: write \${NAME} for an environment variable or \${file:PATH} for a file's content (\`$\${\` for a literal \`\${\`)`,
      );
      return undefined;
    }
    const value = opts.env[reference];
    if (value === undefined) {
      report.error(at, `environment variable ${reference} (used as ${written}) is not set`);
      return undefined;
    }
    if (value === '') {
      report.error(at, `environment variable ${reference} (used as ${written}) is empty`);
      return undefined;
    }
    return value;
  }

  async function walk(node: unknown, at: KeyPath): Promise<void> {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const item: unknown = node[i];
        if (typeof item === 'string') node[i] = await resolveString(item, [...at, i]);
        else await walk(item, [...at, i]);
      }
    } else if (isRecord(node)) {
      for (const [key, value] of Object.entries(node)) {
        if (typeof value === 'string') node[key] = await resolveString(value, [...at, key]);
        else await walk(value, [...at, key]);
      }
    }
  }

  await walk(data, []);
  return result;
}
