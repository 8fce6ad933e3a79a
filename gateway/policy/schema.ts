// The policy's JSON Schema is config/policy.schema.json: editors read it for completion and
// hover help, and the validator reads the very same file, so the two cannot drift apart. Its
// `x-` annotations carry what JSON Schema has no word for (see SchemaNode).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';

export interface SchemaNode {
  description?: string;
  type?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  $ref?: string;
  enum?: unknown[];
  default?: unknown;
  /** What a valid value looks like, for messages. */
  'x-expect'?: string;
  /** Names the parser (units.ts, addresses.ts...) that explains a malformed value. */
  'x-kind'?: string;
  /** Holds a credential: must come from ${...} and is never shown in a message. */
  'x-secret'?: boolean;
  /** Values refused on purpose, each with the reason ops are told. */
  'x-refused'?: Record<string, string>;
}

export const SCHEMA_ANNOTATIONS = ['x-expect', 'x-kind', 'x-secret', 'x-refused'];

// Resolved from the package root, so the sources and the build in dist/ read the same file.
export const schemaFile = join(PACKAGE_ROOT, 'config', 'policy.schema.json');
export const policySchema = JSON.parse(readFileSync(schemaFile, 'utf8')) as SchemaNode & {
  $defs: Record<string, SchemaNode>;
};

/** The node a `$ref` points at, refined by the referring node's own keywords (description...). */
export function deref(node: SchemaNode): SchemaNode {
  const ref = node.$ref;
  if (!ref) return node;
  const target = policySchema.$defs[ref.replace('#/$defs/', '')];
  if (!target) throw new Error(`wxgw: ${schemaFile} refers to missing ${ref}`);
  const { $ref: _ref, ...siblings } = node;
  return { ...deref(target), ...siblings };
}
