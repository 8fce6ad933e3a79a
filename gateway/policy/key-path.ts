// Key paths name a place in the policy document. Three spellings exist: segments (how the code
// walks data), JSON pointers (how ajv and the source index address nodes) and the dotted form
// ops read in messages, e.g. `routes[2].match.path_prefix`.

export type KeyPath = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function formatPath(at: KeyPath): string {
  let out = '';
  for (const seg of at) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function toPointer(at: KeyPath): string {
  return at.map((seg) => '/' + String(seg).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** Turns an ajv instancePath back into segments, using the data to tell list indices from keys. */
export function fromPointer(pointer: string, data: unknown): KeyPath {
  if (pointer === '') return [];
  const out: (string | number)[] = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const index = Number(seg);
      out.push(index);
      node = node[index];
    } else {
      out.push(seg);
      node = isRecord(node) ? node[seg] : undefined;
    }
  }
  return out;
}

/** True when `inner` is `outer` or lies beneath it. */
export function isWithin(inner: KeyPath, outer: KeyPath): boolean {
  return outer.length <= inner.length && outer.every((seg, i) => seg === inner[i]);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
