// Files the policy names (certificates, keys, CA bundles, ${file:...} secrets) are resolved
// against the policy file's directory, so the policy means the same wherever wxgw is started.

import { open, readFile, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';

export function resolveFrom(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** `ENOENT: no such file or directory, open '/x'` -> `no such file or directory (ENOENT)`. */
export function osReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const match = /^([A-Z]+): ([^,]+)/.exec(message);
  return match ? `${match[2]} (${match[1]})` : message;
}

/** Why the file cannot be read, or undefined when it can. */
export async function unreadable(file: string): Promise<string | undefined> {
  try {
    if ((await stat(file)).isDirectory()) return 'it is a directory';
    await (await open(file, 'r')).close();
    return undefined;
  } catch (err) {
    return osReason(err);
  }
}

export async function readText(file: string): Promise<{ ok: true; text: string } | { ok: false; why: string }> {
  const why = await unreadable(file);
  if (why) return { ok: false, why };
  try {
    return { ok: true, text: await readFile(file, 'utf8') };
  } catch (err) {
    return { ok: false, why: osReason(err) };
  }
}
