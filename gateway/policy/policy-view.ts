// What the admin listener's /config shows of the policy in force: the resolved policy (after
// ${...} and defaults) as JSON, every secret replaced, and one hash that names it.
//
//   policyView(config) -> { view, hash }
//   policyChanges(previous, next) -> routes added, removed, changed (by name), other sections changed
//
// Secrets are the keys marked `x-secret: true` in the schema (secrets.ts). The resolved policy
// keeps the schema's key paths, but for the ones build.ts moves (RESOLVED_AT), so a new secret in
// the schema is redacted without code here; test/integration/admin-config.test.ts fails when one is not.
//
// The hash is sha256 over the canonical JSON (keys sorted) of the resolved policy, secrets
// included and the policy file's own path left out: any change of a value in force, a secret's
// included, changes it, the same policy read from another path or by another instance gives the
// same one, and only the digest is ever shown. Certificate files are named by path: a renewal in
// place keeps the hash (wxgw_certificate_expiry_seconds shows it).
import { createHash } from 'node:crypto';
import type { PolicyConfig } from '../types/policy.js';
import { secretPaths } from './secrets.js';

export const REDACTED = '[redacted]';

/** Schema key paths of secrets that build.ts puts elsewhere in the resolved policy. */
export const RESOLVED_AT: Readonly<Record<string, readonly string[]>> = {
  'identity.jwt.secret': ['identity', 'jwt', 'key', 'secret'],
};

/** Strings read with ${file:...} are kept beside the policy with their value, which may be any secret's. */
const FILE_VALUES = ['file_references', '*', 'value'];

const resolvedSecretPaths: readonly (readonly string[])[] = [...secretPaths.map((p) => RESOLVED_AT[p.join('.')] ?? p), FILE_VALUES];

function secretAt(at: readonly string[]): boolean {
  return resolvedSecretPaths.some((pattern) => pattern.length === at.length && pattern.every((seg, i) => seg === '*' || seg === at[i]));
}

/**
 * Plain JSON of a resolved policy: Maps become objects, source positions (`pos`, for messages)
 * are left out, secrets become `secret(value)`.
 */
function plain(node: unknown, at: string[], secret: (value: unknown) => unknown): unknown {
  if (secretAt(at) && node !== undefined) return secret(node);
  if (node instanceof Map) return plain(Object.fromEntries(node), at, secret);
  if (node instanceof Set) return plain([...node], at, secret);
  if (node instanceof RegExp) return node.source;
  if (node instanceof URL) return node.href;
  if (Buffer.isBuffer(node) || node instanceof Uint8Array) return `[${node.byteLength} bytes]`;
  if (Array.isArray(node)) return node.map((item, i) => plain(item, [...at, String(i)], secret));
  if (typeof node === 'function' || typeof node === 'symbol') return undefined;
  if (typeof node === 'bigint') return String(node);
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(node).sort()) {
      if (key === 'pos') continue;
      const value = plain((node as Record<string, unknown>)[key], [...at, key], secret);
      if (value !== undefined) out[key] = value;
    }
    return out;
  }
  return node;
}

export interface PolicyView {
  /** The resolved policy with every secret shown as `[redacted]`. */
  readonly view: Record<string, unknown>;
  /** `sha256:` and 64 hex digits. */
  readonly hash: string;
}

export function policyView(config: PolicyConfig): PolicyView {
  const { file: _file, ...rest } = config;
  const view = plain(rest, [], () => REDACTED) as Record<string, unknown>;
  const full = plain(rest, [], (value) => value);
  return { view: { file: config.file, ...view }, hash: `sha256:${createHash('sha256').update(JSON.stringify(full)).digest('hex')}` };
}

export interface PolicyChanges {
  readonly routes_added: string[];
  readonly routes_removed: string[];
  readonly routes_changed: string[];
  /** Top-level sections other than routes whose values changed (`server`, `wechat`...); a secret's change included, never its value. */
  readonly sections_changed: string[];
}

export function policyChanges(previous: PolicyConfig, next: PolicyConfig): PolicyChanges {
  const full = (c: PolicyConfig): Record<string, unknown> => {
    const { file: _file, ...rest } = c;
    return plain(rest, [], (value) => value) as Record<string, unknown>;
  };
  const a = full(previous);
  const b = full(next);
  const byName = (routes: unknown): Map<string, string> =>
    new Map((routes as { name: string }[]).map((r) => [r.name, JSON.stringify(r)]));
  const before = byName(a.routes);
  const after = byName(b.routes);
  const sections = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => k !== 'routes').sort();
  return {
    routes_added: [...after.keys()].filter((n) => !before.has(n)),
    routes_removed: [...before.keys()].filter((n) => !after.has(n)),
    routes_changed: [...after.keys()].filter((n) => before.has(n) && before.get(n) !== after.get(n)),
    sections_changed: sections.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])),
  };
}
