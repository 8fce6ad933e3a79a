// What /readyz reports: the checks that fail right now, read from the snapshot in force (so a
// renewal clears an expiry at once) and from the listeners.
import type { Readiness } from '../observability/admin-server.js';
import type { SnapshotSource } from '../proxy/gateway-server.js';
import type { Listener } from './listeners.js';

export function readiness(source: SnapshotSource, listeners: readonly Pick<Listener, 'name' | 'server'>[], now: () => number = Date.now): Readiness {
  return {
    failing() {
      const at = now();
      const failing = source.current.certificates.filter((c) => c.notAfter.getTime() <= at).map((c) => `certificate expired: ${c.certFile}`);
      for (const l of listeners) if (!l.server.listening) failing.push(`listener not up: ${l.name}`);
      return failing;
    },
  };
}
