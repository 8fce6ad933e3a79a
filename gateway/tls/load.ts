// Loading the policy's certificates for serving: only entries without errors are returned, so
// an incomplete chain, a wrong key or an expired leaf never reaches a client.
//
//   loadCertificates(tls, { now? }) -> { certificates, diagnostics }   never throws

import type { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Diagnostic, SourcePos, TlsConfig } from '../types/policy.js';
import { notAfter } from './format.js';
import { shownPath } from '../shown-path.js';
import { allDiagnostics, inspectCertificates } from './inspect.js';
import { certificateNames } from './names.js';
import { protocolOptions } from './protocol.js';

export interface LoadedCertificate {
  certFile: string;
  keyFile: string;
  /** As served: leaf first, then the intermediates, exactly as in the file. */
  chain: X509Certificate[];
  /** DNS subjectAltNames lower-case, then IP subjectAltNames. */
  names: string[];
  /** The leaf's expiry. */
  notAfter: Date;
  secureContext: SecureContext;
  /**
   * What `secureContext` was built from. https.Server builds its default context (the one for
   * clients that send no SNI) from options and cannot take a SecureContext, so it needs these.
   * Holds the private key and its passphrase: never log it.
   */
  contextOptions: SecureContextOptions;
  pos: SourcePos;
}

export function loadCertificates(
  tls: TlsConfig,
  opts: { now?: Date } = {},
): { certificates: LoadedCertificate[]; diagnostics: Diagnostic[] } {
  const inspection = inspectCertificates(tls, opts);
  const diagnostics = allDiagnostics(inspection);
  const certificates: LoadedCertificate[] = [];
  for (const e of inspection.entries) {
    // No anchor without an error of its own means the CA bundle is broken: still not servable.
    if (e.keyPem === null || e.anchor === null || e.diagnostics.some((d) => d.severity === 'error')) continue;
    const contextOptions: SecureContextOptions = {
      ...protocolOptions(tls),
      cert: e.certs.map((c) => c.toString()).join(''),
      key: e.keyPem,
      passphrase: e.entry.passphrase,
    };
    let secureContext: SecureContext;
    try {
      secureContext = createSecureContext(contextOptions);
    } catch (err) {
      // OpenSSL's own limits, e.g. "ee key too small" for a 1024-bit RSA key.
      const { file, line, col, path } = e.entry.pos;
      diagnostics.push({
        severity: 'error',
        file,
        line,
        col,
        path: `${path}.cert`,
        message: `${shownPath(e.entry.cert)}: OpenSSL refuses this certificate and key: ${(err as Error).message}`,
      });
      continue;
    }
    const leaf = e.certs[0]!;
    certificates.push({
      certFile: e.entry.cert,
      keyFile: e.entry.key,
      chain: e.certs,
      names: certificateNames(leaf),
      notAfter: notAfter(leaf),
      secureContext,
      contextOptions,
      pos: e.entry.pos,
    });
  }
  return { certificates, diagnostics };
}
