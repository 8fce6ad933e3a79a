// Everything that can be known about the policy's certificate entries without serving them:
// what each file holds, whether the key fits, and how the chain verifies. Shared by
// loadCertificates (which refuses entries with errors) and the `wxgw certs` report (which shows
// broken entries as far as they could be read).
//
//   inspectCertificates(tls, { now? }) -> TlsInspection   never throws
//   allDiagnostics(inspection)         -> Diagnostic[]

import { X509Certificate } from 'node:crypto';
import type { CertificateEntry, Diagnostic, SourcePos, TlsConfig } from '../types/policy.js';
import { checkChain } from './chain.js';
import { dn } from './format.js';
import { shownPath } from '../shown-path.js';
import { keyMatches, readKey } from './key.js';
import { KEY_TYPES, readPemFile } from './pem.js';
import { loadRoots, type TrustStore } from './roots.js';

export interface EntryInspection {
  entry: CertificateEntry;
  /** The certificates of the file that could be parsed, in file order (as served). */
  certs: X509Certificate[];
  /** From the leaf up, each certificate followed by its issuer, as far as verification got. */
  path: X509Certificate[];
  /** The trusted root the chain reaches, or null. */
  anchor: X509Certificate | null;
  /** The private key's PEM block, when it was read and matches the leaf. */
  keyPem: string | null;
  diagnostics: Diagnostic[];
}

export interface TlsInspection {
  roots: TrustStore;
  /** Problems of the CA bundle itself. */
  rootsDiagnostics: Diagnostic[];
  entries: EntryInspection[];
}

export function inspectCertificates(tls: TlsConfig, opts: { now?: Date } = {}): TlsInspection {
  const now = opts.now ?? new Date();
  const { store, diagnostics } = loadRoots(tls);
  const entries = tls.certificates.map((entry) => inspectEntry(entry, store, now, tls.expiry_warning));
  return { roots: store, rootsDiagnostics: diagnostics, entries };
}

/** Every finding, the CA bundle's first, then each entry's in policy order. */
export function allDiagnostics(inspection: TlsInspection): Diagnostic[] {
  return [...inspection.rootsDiagnostics, ...inspection.entries.flatMap((e) => e.diagnostics)];
}

function inspectEntry(entry: CertificateEntry, store: TrustStore, now: Date, expiryWarning: number): EntryInspection {
  const diagnostics: Diagnostic[] = [];
  const report = (severity: Diagnostic['severity'], field: 'cert' | 'key', message: string): void => {
    const file = field === 'cert' ? entry.cert : entry.key;
    diagnostics.push({ severity, ...locate(entry.pos, field), message: `${shownPath(file)}: ${message}` });
  };
  const result: EntryInspection = { entry, certs: [], path: [], anchor: null, keyPem: null, diagnostics };

  const parsed = readCertificates(entry.cert);
  for (const w of parsed.warnings) report('warning', 'cert', w);
  for (const e of parsed.errors) report('error', 'cert', e);
  result.certs = parsed.certs;

  const key = readKey(entry.key, entry.passphrase);
  if (!key.ok) report('error', 'key', key.problem);

  // A chain with an unparsable member would be judged wrongly, so it is not judged at all.
  if (parsed.certs.length === 0 || parsed.errors.length > 0) return result;
  const check = checkChain(parsed.certs, store, { now, expiryWarning });
  for (const f of check.findings) report(f.severity, 'cert', f.message);
  result.path = check.path;
  result.anchor = check.anchor;

  const leaf = check.path[0]!;
  if (key.ok) {
    if (keyMatches(key.key, leaf)) {
      result.keyPem = key.pem;
    } else {
      report(
        'error',
        'key',
        `the private key does not match the certificate ${dn(leaf)} in ${shownPath(entry.cert)}: it is ` +
          `the key of another certificate; use the key generated together with this certificate`,
      );
    }
  }
  return result;
}

function readCertificates(file: string): { certs: X509Certificate[]; errors: string[]; warnings: string[] } {
  const out = { certs: [] as X509Certificate[], errors: [] as string[], warnings: [] as string[] };
  const read = readPemFile(file, 'certificate');
  if (!read.ok) {
    out.errors.push(read.problem);
    return out;
  }
  const blocks = read.blocks.filter((b) => b.type === 'CERTIFICATE');
  const hasKey = read.blocks.some((b) => KEY_TYPES.has(b.type));
  if (blocks.length === 0) {
    const types = new Set(read.blocks.map((b) => b.type));
    out.errors.push(
      hasKey
        ? 'holds a private key, not a certificate: are cert and key swapped? cert must name the ' +
            'certificate chain file (e.g. fullchain.pem)'
        : types.has('CERTIFICATE REQUEST') || types.has('NEW CERTIFICATE REQUEST')
          ? 'holds a certificate signing request (CSR), not a certificate: send it to your CA and ' +
            'serve the certificate chain it returns'
          : `holds ${[...types].join(', ')}, not a certificate: expected -----BEGIN CERTIFICATE-----`,
    );
    return out;
  }
  if (hasKey) {
    out.warnings.push(
      'also holds a private key: keep the key only in the key file, certificate files are often ' +
        'readable by more people',
    );
  }
  blocks.forEach((block, i) => {
    try {
      out.certs.push(new X509Certificate(block.text));
    } catch (err) {
      out.errors.push(`certificate #${i + 1} cannot be parsed: ${(err as Error).message}`);
    }
  });
  return out;
}

function locate(pos: SourcePos, field: 'cert' | 'key'): Omit<Diagnostic, 'severity' | 'message'> {
  return { file: pos.file, line: pos.line, col: pos.col, path: `${pos.path}.${field}` };
}
