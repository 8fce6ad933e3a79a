// config/policy.editor.schema.json, the schema editors read, derived from
// config/policy.schema.json, the one the loader validates with. The loader checks values after
// resolving ${NAME} and ${file:PATH}, so it sees `8443`, never `${PORT}`; an editor sees the
// reference itself. Wherever the loader would accept a string (any string value: a pattern, an
// enum, a const), the editor schema accepts a string holding a reference too. Numbers and booleans
// get nothing: the loader refuses a reference there (it resolves to a string).
//
//   npm run schema:editor       rewrites the editor schema; test/unit/schema-editor.test.ts
//                               fails while it is out of date

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Node = Record<string, unknown>;

export const sourceFile = fileURLToPath(new URL('../config/policy.schema.json', import.meta.url));
export const editorFile = fileURLToPath(new URL('../config/policy.editor.schema.json', import.meta.url));

/** A string holding at least one ${...} that is not the `$${` escape. */
const REFERENCE: Node = {
  description: 'A ${NAME} environment variable or a ${file:PATH} file content, resolved when the policy is loaded; the resolved value is checked then.',
  type: 'string',
  pattern: '(^|[^$])\\$\\{[^}]+\\}',
};

/** Keywords that only describe a value: kept beside the alternatives, so hover and completion still show them. */
const ANNOTATIONS = ['description', 'default', 'x-expect'];

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A value the schema constrains as a string, where a ${...} reference would be refused. */
function refusesReference(node: Node): boolean {
  if (typeof node.pattern === 'string') return true;
  if (Array.isArray(node.enum) && node.enum.some((v) => typeof v === 'string')) return true;
  return typeof node.const === 'string';
}

function transform(node: Node, defsUsedAsKeys: Set<string>): Node {
  const out: Node = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'properties' || key === '$defs') {
      out[key] = Object.fromEntries(Object.entries(value as Node).map(([k, v]) => [k, transform(v as Node, defsUsedAsKeys)]));
    } else if ((key === 'additionalProperties' || key === 'items' || key === 'then' || key === 'else') && isNode(value)) {
      out[key] = transform(value, defsUsedAsKeys);
    } else if (key === 'propertyNames' && isNode(value) && typeof value.$ref === 'string') {
      // Keys are never resolved: they keep the strict definition.
      const name = value.$ref.replace('#/$defs/', '');
      defsUsedAsKeys.add(name);
      out[key] = { ...value, $ref: `#/$defs/${name}_as_key` };
    } else {
      out[key] = value; // `if` conditions included: they pick a branch, they accept nothing themselves
    }
  }
  if (!refusesReference(node) || node.$ref !== undefined) return out;
  const wrapper: Node = {};
  for (const a of ANNOTATIONS) if (node[a] !== undefined) wrapper[a] = node[a];
  wrapper.anyOf = [out, { $ref: '#/$defs/reference' }];
  return wrapper;
}

export function editorSchema(source: Node): Node {
  const used = new Set<string>();
  const out = transform(source, used);
  const defs = { ...(out.$defs as Node) };
  const sourceDefs = source.$defs as Node;
  for (const name of [...used].sort()) defs[`${name}_as_key`] = sourceDefs[name];
  defs.reference = REFERENCE;
  return {
    ...out,
    $comment: 'Generated from policy.schema.json by `npm run schema:editor` (scripts/editor-schema.ts); edit that file instead.',
    $defs: defs,
  };
}

export function renderEditorSchema(): string {
  return `${JSON.stringify(editorSchema(JSON.parse(readFileSync(sourceFile, 'utf8')) as Node), null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) writeFileSync(editorFile, renderEditorSchema());
