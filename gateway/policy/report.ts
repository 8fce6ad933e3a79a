// Findings are collected with the key path they concern, so that one phase can leave alone a
// value another phase already reported, and are turned into Diagnostics with file positions.

import { formatPath, type KeyPath } from './key-path.js';
import type { Diagnostic, Severity } from '../types/policy.js';
import type { Locator } from './yaml-source.js';

/** Where a finding points: the key of a mapping entry, or the value (node) itself. */
export type Anchor = 'key' | 'value';

export interface FindingOptions {
  anchor?: Anchor;
  /**
   * The absent keys a finding is about ("upstream is required"). When a misspelt key nearby
   * was already reported as probably being one of them, the finding would only repeat it.
   */
  missing?: readonly KeyPath[];
}

export interface Finding {
  at: KeyPath;
  missing?: readonly KeyPath[];
  diagnostic: Diagnostic;
}

export class Reporter {
  readonly findings: Finding[] = [];

  constructor(
    private readonly file: string,
    private readonly locator: Locator,
  ) {}

  error(at: KeyPath, message: string, opts: FindingOptions = {}): void {
    this.add('error', at, message, opts);
  }

  warn(at: KeyPath, message: string, opts: FindingOptions = {}): void {
    this.add('warning', at, message, opts);
  }

  /** The line a value is on, for messages that point at a second place ("first used at line 12"). */
  line(at: KeyPath): number {
    return this.locator.position(at, 'value').line;
  }

  private add(severity: Severity, at: KeyPath, message: string, { anchor = 'value', missing }: FindingOptions): void {
    const { line, col } = this.locator.position(at, anchor);
    const diagnostic: Diagnostic = { severity, file: this.file, line, col, path: formatPath(at), message };
    this.findings.push(missing ? { at, missing, diagnostic } : { at, diagnostic });
  }
}

/** Backticks a value for a message; never used on secrets, and long values are cut. */
export function show(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `\`${text.length > 60 ? text.slice(0, 57) + '...' : text}\``;
}
