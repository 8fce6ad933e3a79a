// Choosing a certificate by SNI. The table is built once per certificate set: each snapshot holds
// its own selector, and the HTTPS server's callback reads the one of the snapshot in force, so a
// reload swaps the snapshot and nothing here changes in place.
//
//   new SniSelector(certificates)   the first certificate is the default
//   selector.select(servername)     -> SecureContext   exact name, then `*.parent`, then default
//   selector.callback               for tls/https `SNICallback`

import type { SecureContext } from 'node:tls';
import type { LoadedCertificate } from './load.js';

interface SniTable {
  exact: ReadonlyMap<string, SecureContext>;
  /** Keyed by the wildcard's parent with its dot: `*.example.com` -> `.example.com`. */
  wildcard: ReadonlyMap<string, SecureContext>;
  fallback: SecureContext;
}

export class SniSelector {
  private readonly table: SniTable;

  constructor(certificates: readonly LoadedCertificate[]) {
    this.table = buildTable(certificates);
  }

  select(servername: string): SecureContext {
    const t = this.table;
    let name = servername.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    const exact = t.exact.get(name);
    if (exact) return exact;
    // A wildcard covers exactly one label: strip the first and look up the parent.
    const dot = name.indexOf('.');
    return (dot > 0 && t.wildcard.get(name.slice(dot))) || t.fallback;
  }

  readonly callback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.select(servername));
  };
}

function buildTable(certificates: readonly LoadedCertificate[]): SniTable {
  const first = certificates[0];
  if (!first) throw new Error('SniSelector needs at least one certificate');
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  for (const cert of certificates) {
    for (const name of cert.names) {
      // Earlier entries win a name both cover, as listed in the policy.
      if (name.startsWith('*.')) {
        if (!wildcard.has(name.slice(1))) wildcard.set(name.slice(1), cert.secureContext);
      } else if (!exact.has(name)) {
        exact.set(name, cert.secureContext);
      }
    }
  }
  return { exact, wildcard, fallback: first.secureContext };
}
