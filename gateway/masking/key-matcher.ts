// Member names matched against a profile's rule names as raw bytes, one table step per byte: a
// trie over the canonical names with folding built into its transitions (upper-case ASCII letters
// step as their lower-case forms, `_` and `-` stay where they are). Most member names leave the
// trie at their first or second byte, and none is copied or decoded.

/** The trie as flat tables: `next[state * width + classOf[byte]]`, -1 once no name can match. */
export interface KeyMatcher {
  /** The names matched. */
  readonly names: readonly string[];
  /** Each byte's column; 0 is a byte no name contains. */
  readonly classOf: Uint8Array;
  readonly width: number;
  readonly next: Int32Array;
  /** The name a state spells in full, if any. */
  readonly accept: readonly (string | undefined)[];
  /** Longer raw names are not matched (compile.ts: maxRawKeyBytes). */
  readonly maxRawBytes: number;
}

/**
 * `names`: canonical rule names (folded when `folds`). With `folds`, a raw name matches when
 * foldName() of it is one of them: names.ts.
 */
export function compileKeyMatcher(names: readonly string[], folds: boolean, maxRawBytes: number): KeyMatcher {
  const encoded = names.map((name) => ({ name, bytes: Buffer.from(name) }));
  const classOf = new Uint8Array(256);
  let width = 1;
  for (const { bytes } of encoded) for (const b of bytes) if (classOf[b] === 0) classOf[b] = width++;
  const SEPARATOR = folds ? width++ : -1;
  if (folds) {
    classOf[0x5f] = SEPARATOR;
    classOf[0x2d] = SEPARATOR;
    // Canonical names hold no upper-case ASCII: those bytes step as their lower-case letters.
    for (let c = 0x41; c <= 0x5a; c++) classOf[c] = classOf[c | 0x20]!;
  }
  // The trie, built as child maps first.
  const children: Map<number, number>[] = [new Map()];
  const accept: (string | undefined)[] = [undefined];
  for (const { name, bytes } of encoded) {
    let s = 0;
    for (const b of bytes) {
      let t = children[s]!.get(b);
      if (t === undefined) {
        t = children.length;
        children.push(new Map());
        accept.push(undefined);
        children[s]!.set(b, t);
      }
      s = t;
    }
    accept[s] = name;
  }
  const next = new Int32Array(children.length * width).fill(-1);
  for (let s = 0; s < children.length; s++) {
    for (const [b, t] of children[s]!) next[s * width + classOf[b]!] = t;
    if (folds) next[s * width + SEPARATOR] = s;
  }
  return { names, classOf, width, next, accept, maxRawBytes };
}

/** The rule name buf[start, end) spells (raw bytes, no escapes), or undefined. */
export function matchKey(m: KeyMatcher, buf: Buffer, start: number, end: number): string | undefined {
  if (end - start > m.maxRawBytes) return undefined;
  const { next, classOf, width } = m;
  let s = 0;
  for (let k = start; k < end && s >= 0; k++) s = next[s * width + classOf[buf[k]!]!]!;
  return s < 0 ? undefined : m.accept[s];
}
