// How mask rules compare names with what a backend writes. Backends spell one field many ways
// (`session_key`, `sessionKey`, `SessionKey`, `SESSION_KEY`, `session-key`), and a framework
// that renames fields must not unmask them, so names are compared folded: ASCII letters in lower
// case, `_` and `-` left out. Folding is done once per rule at policy load; per member name it is
// one pass over its bytes (rewriter.ts folds raw bytes the same way, without decoding).

const SEPARATOR = /[_-]/g;
const UPPER = /[A-Z]/g;

/** The canonical form of a name: `Session_Key` -> `sessionkey`. Letters outside ASCII are kept as they are. */
export function foldName(name: string): string {
  return name.replace(SEPARATOR, '').replace(UPPER, (c) => c.toLowerCase());
}

/** Whether `byte` is left out of a folded name. */
export function isNameSeparator(byte: number): boolean {
  return byte === 0x5f || byte === 0x2d;
}

/**
 * The common spellings of a rule's name (as written, snake, kebab, camel, Pascal, upper snake, flat),
 * for places that cannot fold what they compare, such as pino's redaction paths.
 */
export function keySpellings(name: string): string[] {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[\s_-]+/)
    .filter((w) => w !== '')
    .map((w) => w.toLowerCase());
  if (words.length === 0) return [name];
  const cap = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);
  const camel = words[0]! + words.slice(1).map(cap).join('');
  return [...new Set([name, words.join('_'), words.join('-'), camel, words.map(cap).join(''), words.join('_').toUpperCase(), words.join('')])];
}

/**
 * Text in which every name that folds to `canon` contains foldedHaystack(`"canon"`): the bytes
 * read as latin1, `_` and `-` left out, in lower case (latin1 letters too, which is harmless: the
 * needles go through the same steps). Native string operations, several times faster than a loop
 * over the bytes, for the no-parse fast path.
 */
export function foldedHaystack(bytes: Buffer): string {
  return bytes.toString('latin1').replace(SEPARATOR, '').toLowerCase();
}
