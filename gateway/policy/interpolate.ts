// ${...} references in string values: `${NAME}` is an environment variable, `${file:PATH}` a
// file's content (one trailing newline dropped, as `echo` and editors add one), `$${` a literal
// `${`. Resolved values are never echoed: they may be credentials.
//
// On a reload, a ${file:...} that cannot be read (or reads empty) keeps the value the same key
// read from the same files before, with a warning, instead of failing the whole policy: a secret
// store's mount that breaks for a moment must neither empty a secret nor block the rest of the
// reload (a certificate renewal, another secret's rotation). With nothing read before (a start,
// a key or file that is new), it is an error as always.

import { formatPath, isRecord, toPointer, type KeyPath } from './key-path.js';
import { readText, resolveFrom } from './files.js';
import type { Reporter } from './report.js';
import type { FileReference } from '../types/policy.js';

export interface InterpolateOptions {
  env: Record<string, string | undefined>;
  /** Directory relative ${file:...} paths start from: the policy file's. */
  baseDir: string;
  /** What the policy in force read from files, by dotted key path: kept for a file that cannot be read now. */
  previous?: ReadonlyMap<string, FileReference>;
}

export interface Interpolation {
  /** Pointers of the strings that held at least one reference. */
  referenced: Set<string>;
  /** Strings whose references could not all be resolved; they keep their raw text. */
  failed: KeyPath[];
  /** Strings read (partly) from files, by dotted key path: what a reload watches and may keep. */
  files: Map<string, FileReference>;
}

const sameFiles = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((f, i) => f === b[i]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Resolves every reference in `data` in place; problems go to `report`. */
export async function interpolate(data: unknown, opts: InterpolateOptions, report: Reporter): Promise<Interpolation> {
  const result: Interpolation = { referenced: new Set(), failed: [], files: new Map() };

  async function resolveString(raw: string, at: KeyPath): Promise<string> {
    let out = '';
    /** A reference is wrong in itself (reported already): nothing read before can stand in. */
    let broken = false;
    let references = 0;
    const files: string[] = [];
    /** Why each file that could not be read was not. */
    const unread: string[] = [];
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
        broken = true;
        break;
      }
      const reference = raw.slice(i + 2, end);
      const unreadBefore = unread.length;
      const value = await lookUp(reference, at, files, unread);
      references++;
      if (value !== undefined) out += value;
      else if (unread.length === unreadBefore) broken = true;
      i = end + 1;
    }
    if (references > 0) result.referenced.add(toPointer(at));
    const key = formatPath(at);
    if (!broken && unread.length > 0) {
      const before = opts.previous?.get(key);
      if (before && sameFiles(before.files, files)) {
        const why = unread.join('; ');
        report.warn(at, `${why}; the value read before stays in force until it can be read`);
        result.files.set(key, { files, value: before.value, unreadable: why });
        return before.value;
      }
      for (const message of unread) report.error(at, message);
    }
    if (broken || unread.length > 0) {
      result.failed.push(at);
      return raw;
    }
    if (files.length > 0) result.files.set(key, { files, value: out });
    return out;
  }

  async function lookUp(reference: string, at: KeyPath, files: string[], unread: string[]): Promise<string | undefined> {
    const written = `\`\${${reference}}\``;
    if (reference.startsWith('file:')) {
      const path = reference.slice('file:'.length);
      if (path === '') {
        report.error(at, `${written} names no file; write \${file:/run/secrets/NAME}`);
        return undefined;
      }
      const file = resolveFrom(opts.baseDir, path);
      files.push(file);
      const read = await readText(file);
      if (!read.ok) {
        unread.push(`${written}: cannot read ${file}: ${read.why}`);
        return undefined;
      }
      const text = read.text.replace(/\r?\n$/, '');
      if (text === '') {
        unread.push(`${written}: ${file} is empty`);
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
