// Reloading the policy: what cannot change without a restart, and the file watcher that notices
// edits. The reload itself (load beside, then swap one reference) lives in main.ts.
//
//   listenerChange(old, next)            -> message naming the first key that needs a restart
//   watchFiles(paths, onChange, debounce) -> { update(paths), close() }

import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { ListenAddress, PolicyConfig } from './policy/types.js';

const at = (l: ListenAddress | undefined): string => (l ? `${l.host}:${l.port}` : 'off');

/**
 * Listeners are bound once and their limits are baked into the servers, so a policy that
 * changes them is refused: applying half of it would leave the file lying about what runs.
 */
export function listenerChange(old: PolicyConfig, next: PolicyConfig): string | undefined {
  const a = old.server;
  const b = next.server;
  const restart = (key: string, from: string, to: string): string =>
    `${key} changed from ${from} to ${to}; restart wxgw to apply it`;
  if (at(a.https?.listen) !== at(b.https?.listen)) return restart('server.https.listen', at(a.https?.listen), at(b.https?.listen));
  if (at(a.http?.listen) !== at(b.http?.listen)) return restart('server.http.listen', at(a.http?.listen), at(b.http?.listen));
  if ((a.http?.mode ?? 'off') !== (b.http?.mode ?? 'off')) return restart('server.http.mode', a.http?.mode ?? 'off', b.http?.mode ?? 'off');
  if (at(a.admin?.listen) !== at(b.admin?.listen)) return restart('server.admin.listen', at(a.admin?.listen), at(b.admin?.listen));
  for (const key of ['body', 'handshake_timeout', 'headers_timeout', 'request_timeout'] as const) {
    if (a.limits[key] !== b.limits[key]) return restart(`server.limits.${key}`, String(a.limits[key]), String(b.limits[key]));
  }
  // The store holds live counters and connections; switching it mid-traffic would reset every
  // limit and replay window, so it changes only with a restart.
  const { pos: _a, ...storeA } = old.store;
  const { pos: _b, ...storeB } = next.store;
  if (JSON.stringify(storeA) !== JSON.stringify(storeB)) return 'store changed; restart wxgw to apply it';
  return undefined;
}

/** Every file a policy reads: the policy itself, certificates, keys, the CA bundle, verification keys. */
export function policyFiles(policy: PolicyConfig): string[] {
  const files = [policy.file];
  for (const c of policy.tls.certificates) files.push(c.cert, c.key);
  if (policy.tls.roots !== 'system') files.push(policy.tls.roots.bundle);
  const jwtKey = policy.identity?.jwt?.key;
  if (jwtKey && jwtKey.kind !== 'secret') files.push(jwtKey.file);
  for (const k of policy.wechatpay?.keys ?? []) files.push(k.file);
  return files;
}

export interface FileWatch {
  /** Watches these files from now on (after a reload that names other certificates). */
  update(paths: readonly string[]): void;
  close(): void;
}

/**
 * Calls onChange once per burst of changes, with the time of the burst's first event.
 * Directories are watched, not files: editors replace a file by renaming a temporary one over
 * it and Kubernetes swaps a ConfigMap's `..data` symlink, and a watch on the old file's inode
 * would see neither.
 */
export function watchFiles(paths: readonly string[], onChange: (firstEventAt: number) => void, debounceMs = 200): FileWatch {
  const watchers = new Map<string, FSWatcher>();
  let names = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let first = 0;

  const fire = (): void => {
    timer = undefined;
    onChange(first);
  };
  const event = (filename: string | Buffer | null): void => {
    const name = filename?.toString();
    // `..data` and its siblings are how a ConfigMap volume changes every file at once.
    if (name !== undefined && !names.has(name) && !name.startsWith('..')) return;
    if (!timer) first = performance.now();
    else clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
    timer.unref();
  };

  const update = (list: readonly string[]): void => {
    names = new Set(list.map((p) => basename(p)));
    const dirs = new Set(list.map((p) => dirname(p)));
    for (const [dir, w] of watchers) {
      if (!dirs.has(dir)) {
        w.close();
        watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      const w = watch(dir, { persistent: false }, (_type, filename) => event(filename));
      // A directory that disappears (a volume unmounted) must not crash the gateway.
      w.on('error', () => {
        w.close();
        watchers.delete(dir);
      });
      watchers.set(dir, w);
    }
  };
  update(paths);
  return {
    update,
    close() {
      if (timer) clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
