// Secret fields are declared once, by `x-secret: true` in the schema; everything here derives
// from that, so a later secret (wechat.app_secret, identity.session.signing_key...) needs no code.

import { isRecord, toPointer, type KeyPath } from './key-path.js';
import type { Reporter } from './report.js';
import { deref, policySchema, type SchemaNode } from './schema.js';

/** Key paths of the secret fields, `*` standing for any list index or map key. */
function collect(node: SchemaNode, at: string[], out: string[][]): string[][] {
  const resolved = deref(node);
  if (resolved['x-secret']) out.push(at);
  for (const [key, child] of Object.entries(resolved.properties ?? {})) collect(child, [...at, key], out);
  if (typeof resolved.additionalProperties === 'object') collect(resolved.additionalProperties, [...at, '*'], out);
  if (resolved.items) collect(resolved.items, [...at, '*'], out);
  return out;
}

export const secretPaths: readonly (readonly string[])[] = collect(policySchema, [], []);

export function isSecret(at: KeyPath): boolean {
  return secretPaths.some(
    (pattern) => pattern.length === at.length && pattern.every((seg, i) => seg === '*' || seg === String(at[i])),
  );
}

/** Warns about every secret written into the policy itself instead of referenced with ${...}. */
export function warnLiteralSecrets(data: unknown, referenced: ReadonlySet<string>, report: Reporter): void {
  const visit = (node: unknown, at: KeyPath): void => {
    if (typeof node === 'string') {
      if (isSecret(at) && !referenced.has(toPointer(at))) {
        report.warn(
          at,
          'is a secret written into the policy file; keep it out of the file: write ${ENV_NAME} or ${file:/run/secrets/NAME}',
        );
      }
    } else if (Array.isArray(node)) node.forEach((item, i) => visit(item, [...at, i]));
    else if (isRecord(node)) for (const [key, value] of Object.entries(node)) visit(value, [...at, key]);
  };
  visit(data, []);
}
