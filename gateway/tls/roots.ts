// The trust anchors chains are checked against: Node's bundled Mozilla roots or a PEM bundle.
//
//   loadRoots(tls) -> { store, diagnostics }   never throws; bundle problems name the bundle

import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import type { Diagnostic, TlsConfig } from '../types/policy.js';
import { shownPath } from '../shown-path.js';
import { readPemFile } from './pem.js';

export interface TrustStore {
  /** How messages name the store, e.g. `the CA bundle certs/roots.pem`. */
  description: string;
  certs: readonly X509Certificate[];
  /** False when the bundle could not be read; chains are then not judged on trust. */
  usable: boolean;
}

let systemStore: TrustStore | undefined;

export function loadRoots(tls: TlsConfig): { store: TrustStore; diagnostics: Diagnostic[] } {
  if (tls.roots === 'system') {
    // Parsed once: about 150 certificates that never change while the process runs.
    systemStore ??= {
      description: "the system roots (Node's bundled Mozilla CA list)",
      certs: rootCertificates.map((pem) => new X509Certificate(pem)),
      usable: true,
    };
    return { store: systemStore, diagnostics: [] };
  }

  const file = tls.roots.bundle;
  const shown = shownPath(file);
  const description = `the CA bundle ${shown}`;
  const at = { file: tls.pos.file, line: tls.pos.line, col: tls.pos.col, path: `${tls.pos.path}.roots` };
  const diagnostics: Diagnostic[] = [];
  const error = (message: string): void => {
    diagnostics.push({ severity: 'error', ...at, message: `${shown}: ${message}` });
  };

  const read = readPemFile(file, 'CA bundle');
  if (!read.ok) {
    error(read.problem);
    return { store: { description, certs: [], usable: false }, diagnostics };
  }
  const certs: X509Certificate[] = [];
  read.blocks
    .filter((block) => block.type === 'CERTIFICATE')
    .forEach((block, i) => {
      try {
        certs.push(new X509Certificate(block.text));
      } catch (err) {
        error(`certificate #${i + 1} cannot be parsed: ${(err as Error).message}`);
      }
    });
  if (certs.length === 0 && diagnostics.length === 0) {
    const found = [...new Set(read.blocks.map((b) => b.type))].join(', ');
    error(`holds no certificate, only ${found}: a CA bundle lists the root certificates to trust`);
  }
  return { store: { description, certs, usable: certs.length > 0 }, diagnostics };
}
