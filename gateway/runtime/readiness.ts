// What /readyz reports: the checks that fail right now, read from the snapshot in force (so a
// renewal clears an expiry at once), from the listeners, from the shutdown in progress, and from
// the file descriptors left: a process out of them answers every request 502 while looking up.
// Secret files kept at their old value are reported as warnings, not failures.
import { readdirSync, readFileSync } from 'node:fs';
import type { Readiness } from '../observability/admin-server.js';
import type { SnapshotSource } from '../proxy/gateway-server.js';
import type { DrainState, Listener } from './listeners.js';
import type { PolicyConfig } from '../types/policy.js';

/** Past this share of the soft descriptor limit in use, new connections are about to fail with EMFILE. */
export const FD_READY_SHARE = 0.9;

export type FdUsage =
  | {
      /** Descriptors open now. */
      open: number;
      /** The soft RLIMIT_NOFILE. */
      limit: number;
    }
  /** Not one descriptor was left to read /proc with. */
  | { exhausted: string };

/**
 * The descriptors in use and the soft limit, read from /proc at each call (a probe every few
 * seconds; a prlimit raised meanwhile is seen). Undefined where there is no /proc (not Linux) or
 * no limit.
 */
export function fdUsage(): FdUsage | undefined {
  let limits: string;
  let entries: string[];
  try {
    limits = readFileSync('/proc/self/limits', 'utf8');
    entries = readdirSync('/proc/self/fd');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? { exhausted: code } : undefined;
  }
  const soft = /^Max open files\s+(\d+)/m.exec(limits)?.[1];
  if (soft === undefined) return undefined;
  // The listing includes the descriptor that read the directory, closed once it was read.
  return { open: entries.length - 1, limit: Number(soft) };
}

export interface ReadinessInputs {
  /** Set at SIGTERM: the balancer must stop sending new connections here. */
  readonly drain?: Readonly<DrainState>;
  /** Descriptor figures; fdUsage by default, injected by tests. */
  readonly fds?: () => FdUsage | undefined;
}

export function readiness(
  source: SnapshotSource,
  listeners: readonly Pick<Listener, 'name' | 'server'>[],
  now: () => number = Date.now,
  inputs: ReadinessInputs = {},
): Readiness {
  const fds = inputs.fds ?? fdUsage;
  return {
    failing() {
      const at = now();
      const failing = inputs.drain?.draining ? ['draining: shutting down, new connections go elsewhere'] : [];
      failing.push(...source.current.certificates.filter((c) => c.notAfter.getTime() <= at).map((c) => `certificate expired: ${c.certFile}`));
      for (const l of listeners) if (!l.server.listening) failing.push(`listener not up: ${l.name}`);
      const use = fds();
      if (use && 'exhausted' in use) failing.push(`file descriptors exhausted: /proc/self/fd cannot be read (${use.exhausted})`);
      else if (use && use.open > use.limit * FD_READY_SHARE) {
        failing.push(`file descriptors near the limit: ${use.open} of ${use.limit} in use (over ${FD_READY_SHARE * 100}%)`);
      }
      return failing;
    },
    // Not a failure: the gateway serves with the value read before, and taking every replica
    // out of the balancer because they share one broken secret mount would be an outage.
    warnings() {
      return unreadableFiles(source.current.policy).map(
        ({ key, why }) => `secret file unreadable: ${key} keeps the value read before (${why})`,
      );
    },
  };
}

/** The ${file:...} values the policy in force kept from before because their files could not be read. */
export function unreadableFiles(policy: PolicyConfig): { key: string; why: string }[] {
  const out: { key: string; why: string }[] = [];
  for (const [key, ref] of policy.file_references ?? []) if (ref.unreadable !== undefined) out.push({ key, why: ref.unreadable });
  return out;
}
