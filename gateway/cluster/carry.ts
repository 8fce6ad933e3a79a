// A checked policy as a message from the primary to its workers, and back. The config travels as
// policy/packed.ts packs it for a worker thread (URLs as hrefs, routes in chunks); certificates
// travel as what they were built from (PEM text, the key, where the policy named them), since a
// SecureContext and an X509Certificate cannot cross processes. A worker therefore serves exactly
// what the primary read and checked, never a file that changed since.
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { LoadedPolicy } from '../main.js';
import { pack, unpack, type PackedPolicy } from '../policy/packed.js';
import type { LoadedCertificate } from '../tls/load.js';
import type { SourcePos } from '../types/policy.js';

interface CarriedCertificate {
  certFile: string;
  keyFile: string;
  chain: string[];
  names: string[];
  notAfter: number;
  contextOptions: SecureContextOptions;
  pos: SourcePos;
}

export interface CarriedPolicy {
  readonly policy: PackedPolicy;
  readonly certificates: CarriedCertificate[];
}

/** Throws policy/packed.ts's Uncarriable for a config that holds something no message can carry. */
export function carry(loaded: LoadedPolicy): CarriedPolicy {
  return {
    policy: pack(loaded),
    certificates: loaded.certificates.map((c) => ({
      certFile: c.certFile,
      keyFile: c.keyFile,
      chain: c.chain.map((x) => x.toString()),
      names: c.names,
      notAfter: c.notAfter.getTime(),
      contextOptions: c.contextOptions,
      pos: c.pos,
    })),
  };
}

export async function arrive(carried: CarriedPolicy): Promise<LoadedPolicy> {
  const { config, warnings } = await unpack(carried.policy);
  const certificates: LoadedCertificate[] = carried.certificates.map((c) => ({
    certFile: c.certFile,
    keyFile: c.keyFile,
    chain: c.chain.map((pem) => new X509Certificate(pem)),
    names: c.names,
    notAfter: new Date(c.notAfter),
    // Built from the same options the primary's loadCertificates accepted.
    secureContext: createSecureContext(c.contextOptions),
    contextOptions: c.contextOptions,
    pos: c.pos,
  }));
  return { config, certificates, warnings };
}
