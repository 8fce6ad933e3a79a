// A mask profile turned into the lookups the maskers walk with: one map for key rules, a trie
// for path rules, the detector list, and the needles of the no-parse fast path. Everything here
// is computed once per policy load, never per response.
import type { MaskDetector, MaskProfileConfig, MaskTarget, PartialRule } from '../types/policy.js';
import { DETECTOR_ORDER } from './detectors.js';
import { compileHeaderMask, type HeaderMask } from './header-rules.js';
import { foldedHaystack, foldName, keySpellings } from './names.js';

/**
 * What happens to one value. When several rules reach the same value the strongest wins, in the
 * order drop > replace > hash > partial, so that adding a rule can only hide more.
 */
export type MaskAction =
  | { kind: 'drop' }
  /** `json`: the value as a JSON string, quotes included, in UTF-8. */
  | { kind: 'replace'; value: string; json: Buffer }
  | { kind: 'hash' }
  /**
   * `fill`: `char` as it appears inside a JSON string, in UTF-8, so that an ASCII value can be
   * masked byte for byte; null when `char` has a surrogate, whose repeats could pair up
   * differently than one escaped copy.
   */
  | { kind: 'partial'; rule: PartialRule; fill: Buffer | null };

const SURROGATE = /[\uD800-\uDFFF]/;

const STRENGTH = { drop: 4, replace: 3, hash: 2, partial: 1 } as const;

export function stronger(a: MaskAction | undefined, b: MaskAction | undefined): MaskAction | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return STRENGTH[b.kind] > STRENGTH[a.kind] ? b : a;
}

/** One step of path rules: `children` by member name, `star` for `*`, `action` when a path ends here. */
export interface PathNode {
  readonly children: Map<string, PathNode>;
  star: PathNode | undefined;
  action: MaskAction | undefined;
}

export interface CompiledMask {
  readonly name: string;
  /**
   * Every key name a rule mentions (a path's last named segment), for log redaction; with
   * `key_match: fold` also in its usual other spellings (`sessionKey`, `SESSION_KEY`, ...).
   */
  readonly keys: ReadonlySet<string>;
  /** Extra lower-case media types masked as JSON (failing closed when not JSON), besides the JSON types. */
  readonly contentTypes: ReadonlySet<string>;
  /** Whether names compare folded (foldName) rather than byte for byte. */
  readonly folds: boolean;
  /** A member name in the form rules are looked up by: folded, or as it is. */
  readonly canon: (name: string) => string;
  /** Bodies up to this many bytes are masked in one pass, larger ones as a stream. */
  readonly streamAbove: number;
  readonly keyRules: ReadonlyMap<string, MaskAction>;
  /** Null when the profile has no path rules. */
  readonly pathRoot: PathNode | null;
  readonly detectors: readonly MaskDetector[];
  /**
   * Every name a key or path rule mentions, in canonical form, indexed by UTF-8 length (up to
   * maxKeyBytes): keys are matched as bytes, undecoded (folded byte by byte when `folds`).
   */
  readonly names: readonly (readonly { bytes: Buffer; name: string }[] | undefined)[];
  /** Byte length of the longest canonical name a key or path rule names. */
  readonly maxKeyBytes: number;
  /**
   * Longest member name, as written and unescaped, that can still match a rule: maxKeyBytes, or
   * with folding room for a separator between every two characters. Longer keys are not decoded.
   */
  readonly maxRawKeyBytes: number;
  /**
   * `"name"` as JSON writes it, one per rule target, in canonical form: a body containing none
   * of them (nor, when `folds`, of foldedNeedles once folded), and no escape that could spell one
   * differently, cannot match any rule. Null when some target has no named segment (`$.*`),
   * which no needle can rule out.
   */
  readonly needles: readonly Buffer[] | null;
  /** With folded names: the needles as foldedHaystack() writes them, to look for in a folded body. */
  readonly foldedNeedles: readonly string[] | null;
  readonly hashKey: string | undefined;
  /** What the profile does to response headers and Set-Cookie lines. */
  readonly headers: HeaderMask;
}

function newNode(): PathNode {
  return { children: new Map(), star: undefined, action: undefined };
}

export function compileMaskProfile(cfg: MaskProfileConfig): CompiledMask {
  const folds = cfg.key_match !== 'exact';
  const canon = folds ? foldName : (name: string): string => name;
  const keyRules = new Map<string, MaskAction>();
  let pathRoot: PathNode | null = null;
  const keys = new Set<string>();
  const needles: Buffer[] = [];
  let needlesUsable = true;
  let maxKeyBytes = 0;
  const names: { bytes: Buffer; name: string }[][] = [];
  const addName = (name: string): void => {
    const bytes = Buffer.from(name);
    const list = (names[bytes.length] ??= []);
    if (!list.some((e) => e.name === name)) list.push({ bytes, name });
    maxKeyBytes = Math.max(maxKeyBytes, bytes.length);
  };

  const addKeys = (name: string): void => {
    for (const k of folds ? keySpellings(name) : [name]) keys.add(k);
  };

  const add = (target: MaskTarget, action: MaskAction): void => {
    if (target.kind === 'key') {
      const key = canon(target.key);
      keyRules.set(key, stronger(keyRules.get(key), action)!);
      addKeys(target.key);
      needles.push(Buffer.from(JSON.stringify(key)));
      addName(key);
      return;
    }
    pathRoot ??= newNode();
    let node = pathRoot;
    for (const seg of target.path) {
      if (seg === '*') {
        node = node.star ??= newNode();
      } else {
        const name = canon(seg);
        let next = node.children.get(name);
        if (next === undefined) node.children.set(name, (next = newNode()));
        node = next;
        addName(name);
      }
    }
    node.action = stronger(node.action, action);
    const named = target.path.filter((seg) => seg !== '*');
    const last = named[named.length - 1];
    if (last === undefined) {
      needlesUsable = false;
    } else {
      addKeys(last);
      needles.push(Buffer.from(JSON.stringify(canon(last))));
    }
  };

  for (const t of cfg.drop) add(t, { kind: 'drop' });
  for (const { target, value } of cfg.replace) add(target, { kind: 'replace', value, json: Buffer.from(JSON.stringify(value)) });
  for (const t of cfg.hash) add(t, { kind: 'hash' });
  for (const { target, rule } of cfg.partial) {
    const fill = SURROGATE.test(rule.char) ? null : Buffer.from(JSON.stringify(rule.char).slice(1, -1));
    add(target, { kind: 'partial', rule, fill });
  }

  const byHeader = new Map<string, MaskAction>();
  for (const [key, action] of keyRules) byHeader.set(key.toLowerCase(), stronger(byHeader.get(key.toLowerCase()), action)!);

  return {
    name: cfg.name,
    keys,
    contentTypes: new Set(cfg.content_types.map((t) => t.toLowerCase())),
    folds,
    canon,
    streamAbove: cfg.stream_above,
    keyRules,
    pathRoot,
    detectors: DETECTOR_ORDER.filter((d) => cfg.detect.includes(d)),
    names: Array.from({ length: maxKeyBytes + 1 }, (_, n) => names[n]),
    maxKeyBytes,
    maxRawKeyBytes: folds ? 2 * maxKeyBytes + 2 : maxKeyBytes,
    needles: needlesUsable ? needles : null,
    foldedNeedles: needlesUsable && folds ? needles.map(foldedHaystack) : null,
    hashKey: cfg.hash_key,
    headers: compileHeaderMask(cfg.headers, keyRules, byHeader, canon),
  };
}

/**
 * The action for member `key` (in canonical form) of a container whose path position is `nodes`,
 * and the path nodes its own members start from. Array elements are matched with `key`
 * undefined: only `*` applies.
 */
export function resolveEntry(
  mask: CompiledMask,
  nodes: readonly PathNode[],
  key: string | undefined,
): { action: MaskAction | undefined; next: PathNode[] } {
  let action = key === undefined ? undefined : mask.keyRules.get(key);
  const next: PathNode[] = [];
  for (const node of nodes) {
    const named = key === undefined ? undefined : node.children.get(key);
    for (const child of [named, node.star]) {
      if (child === undefined) continue;
      action = stronger(action, child.action);
      if (child.children.size > 0 || child.star !== undefined) next.push(child);
    }
  }
  return { action, next };
}
