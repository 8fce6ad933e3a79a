// Noticing edits to the files a policy reads, however they are made: written in place, renamed
// over by an editor, or swapped all at once by a Kubernetes ConfigMap volume.
//
//   watchFiles(paths, onChange, debounce) -> { update(paths), close() }

import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

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
