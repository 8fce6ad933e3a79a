// YAML text -> plain data plus an index of where each key and value stands. Walking the
// document ourselves (instead of toJS) is what lets every later message carry a line and column,
// and lets duplicate keys be reported where they are rather than silently overwritten.

import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type YAMLError,
} from 'yaml';
import { formatPath, toPointer, type KeyPath } from './key-path.js';
import type { Anchor } from './report.js';
import type { Diagnostic } from '../types/policy.js';

export interface Position {
  line: number;
  col: number;
}

interface Place {
  key?: Position;
  value: Position;
}

/** Positions of keys and values by key path; a missing path falls back to its nearest parent. */
export class Locator {
  private readonly places = new Map<string, Place>();

  set(at: KeyPath, place: Place): void {
    this.places.set(toPointer(at), place);
  }

  position(at: KeyPath, anchor: Anchor): Position {
    for (let depth = at.length; depth >= 0; depth--) {
      const place = this.places.get(toPointer(at.slice(0, depth)));
      if (!place) continue;
      return anchor === 'key' && depth === at.length ? (place.key ?? place.value) : place.value;
    }
    return { line: 1, col: 1 };
  }
}

export interface YamlSource {
  /** Plain data: objects (null prototype), arrays, strings, numbers, booleans, null. */
  data: unknown;
  locator: Locator;
  diagnostics: Diagnostic[];
  /** True when the text is not usable YAML; nothing beyond `diagnostics` is meaningful then. */
  broken: boolean;
}

export function readYaml(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const locator = new Locator();
  const diagnostics: Diagnostic[] = [];
  const at = (offset: number): Position => lineCounter.linePos(offset);
  const seen = new Set<string>();
  // An anchored mapping is walked wherever it is used; its problems are told once.
  const problem = (severity: Diagnostic['severity'], pos: Position, path: KeyPath, message: string): void => {
    const id = `${pos.line}:${pos.col} ${message}`;
    if (seen.has(id)) return;
    seen.add(id);
    diagnostics.push({ severity, file, ...pos, path: formatPath(path), message });
  };

  const yamlProblem = (severity: Diagnostic['severity'], e: YAMLError): void =>
    problem(severity, at(e.pos[0]), [], `YAML syntax: ${e.message.replace(/ at line \d+, column \d+.*$/s, '')}`);
  // After a syntax error the parser's recovery produces follow-on errors about lines that are
  // fine; the first error is the one to fix.
  if (doc.errors[0]) yamlProblem('error', doc.errors[0]);
  for (const e of doc.warnings) yamlProblem('warning', e);
  if (doc.errors.length > 0) return { data: undefined, locator, diagnostics, broken: true };
  if (doc.contents === null) {
    problem('error', { line: 1, col: 1 }, [], 'the policy is empty; expected a mapping with version, server, tls, upstreams and routes');
    return { data: undefined, locator, diagnostics, broken: true };
  }

  const walker = new Walker(doc, locator, at, (path, pos, message) => problem('error', pos, path, message));
  const data = walker.value(doc.contents, []);
  locator.set([], { value: at(doc.contents.range?.[0] ?? 0) });
  return { data, locator, diagnostics, broken: false };
}

/** YAML 1.1's merge key, which the yaml package leaves to us with `merge` off. */
const MERGE_KEY = '<<';

class Walker {
  /** Aliases are followed, but an alias inside its own anchor would never end. */
  private readonly open = new Set<YamlNode>();

  constructor(
    private readonly doc: Document,
    private readonly locator: Locator,
    private readonly at: (offset: number) => Position,
    private readonly error: (path: KeyPath, pos: Position, message: string) => void,
  ) {}

  value(node: unknown, path: KeyPath): unknown {
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (!target || this.open.has(target)) {
        this.error(path, this.start(node), `alias *${node.source} cannot be used here`);
        return null;
      }
      return this.value(target, path);
    }
    if (isScalar(node)) return node.value;
    if (isSeq(node)) {
      this.open.add(node);
      const out = node.items.map((item, i) => this.entry(item, [...path, i]));
      this.open.delete(node);
      return out;
    }
    if (isMap(node)) {
      this.open.add(node);
      const out = this.mapping(node.items, path);
      this.open.delete(node);
      return out;
    }
    return null;
  }

  private entry(node: unknown, path: KeyPath, key?: Position): unknown {
    this.locator.set(path, { key, value: this.valuePos(node, key) });
    return this.value(node, path);
  }

  private mapping(pairs: { key: unknown; value: unknown }[], path: KeyPath): Record<string, unknown> {
    const out = Object.create(null) as Record<string, unknown>;
    const explicit: { key: string; keyPos: Position; value: unknown }[] = [];
    const merges: { value: unknown; at: Position }[] = [];
    for (const pair of pairs) {
      const keyPos = this.start(pair.key);
      if (!isScalar(pair.key) || pair.key.value === null || typeof pair.key.value === 'object') {
        this.error(path, keyPos, 'keys must be plain words, not lists, mappings or empty');
      } else if (String(pair.key.value) === MERGE_KEY) {
        merges.push({ value: pair.value, at: keyPos });
      } else {
        explicit.push({ key: String(pair.key.value), keyPos, value: pair.value });
      }
    }
    // Merged first, so that keys written in the mapping itself overwrite them, positions included.
    for (const merge of merges) this.merge(merge.value, merge.at, path, out);
    const firstSeen = new Map<string, Position>();
    for (const { key, keyPos, value } of explicit) {
      const first = firstSeen.get(key);
      if (first) {
        this.error([...path, key], keyPos, `duplicate key \`${key}\`; it is already set at line ${first.line}`);
        continue;
      }
      firstSeen.set(key, keyPos);
      out[key] = this.entry(value, [...path, key], keyPos);
    }
    return out;
  }

  /** `<<: *defaults` (or a list of them); the first mapping listed wins over later ones. */
  private merge(value: unknown, at: Position, path: KeyPath, out: Record<string, unknown>): void {
    // Walked last to first, so that the first listed overwrites the others, positions included.
    const sources = isSeq(value) ? [...value.items].reverse() : [value];
    for (const source of sources) {
      const map = isAlias(source) ? source.resolve(this.doc) : source;
      if (!isMap(map) || this.open.has(map)) {
        this.error([...path, MERGE_KEY], at, '`<<` merges mappings only: write `<<: *name` with an anchored mapping');
        continue;
      }
      this.open.add(map);
      const merged = this.mapping(map.items, path);
      this.open.delete(map);
      Object.assign(out, merged);
    }
  }

  private start(node: unknown): Position {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return this.at(range?.[0] ?? 0);
  }

  /** An empty value (`key:` and nothing) has no useful position of its own; its key has. */
  private valuePos(node: unknown, key: Position | undefined): Position {
    const empty = node === null || (isScalar(node) && node.value === null && node.source === '');
    return empty && key ? key : this.start(node);
  }
}
