// The `wxgw certs` report: for each certificate entry, every certificate as served, the root it
// verifies to, and every finding. Broken entries show whatever could be parsed.
//
//   describeCertificates(tls, { now? }) -> { text, ok }   text for stdout; ok: no errors

import type { X509Certificate } from 'node:crypto';
import type { Diagnostic, TlsConfig } from '../types/policy.js';
import { selfSigned } from './chain.js';
import { days, daysLeft, dn, notAfter, notBefore, oneLine } from './format.js';
import { shownPath } from '../shown-path.js';
import { allDiagnostics, inspectCertificates, type EntryInspection } from './inspect.js';
import { certificateNames } from './names.js';

export function describeCertificates(tls: TlsConfig, opts: { now?: Date } = {}): { text: string; ok: boolean } {
  const now = opts.now ?? new Date();
  const inspection = inspectCertificates(tls, { now });
  const { roots } = inspection;
  const lines = [`trust: ${roots.description} (${roots.certs.length} root${roots.certs.length === 1 ? '' : 's'})`];
  lines.push(...findings(inspection.rootsDiagnostics, '  '));
  for (const entry of inspection.entries) lines.push('', ...describeEntry(entry, roots.description, now));
  const ok = !allDiagnostics(inspection).some((d) => d.severity === 'error');
  return { text: lines.join('\n') + '\n', ok };
}

function describeEntry(e: EntryInspection, roots: string, now: Date): string[] {
  const errors = e.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = e.diagnostics.length - errors;
  const counts = [errors ? plural(errors, 'error') : '', warnings ? plural(warnings, 'warning') : ''].filter(Boolean);
  // Without an anchor and without an error of its own, the CA bundle is what failed.
  const verdict = errors > 0 ? 'REJECTED' : e.anchor ? 'ok' : 'NOT VERIFIED';
  const status = `${verdict}${counts.length > 0 ? ` (${counts.join(', ')})` : ''}`;
  const lines = [
    `${e.entry.pos.path}: ${status}`,
    `  cert  ${shownPath(e.entry.cert)}`,
    `  key   ${shownPath(e.entry.key)}`,
  ];
  if (e.certs.length === 0) lines.push('  (no certificate could be read)');
  e.certs.forEach((cert, i) => lines.push(...describeCert(cert, i, role(cert, e), now)));
  if (e.anchor) {
    const until = stamp(notAfter(e.anchor));
    lines.push(`  verifies to the trusted root ${dn(e.anchor)} (valid until ${until}) from ${roots}`);
  } else if (e.certs.length > 0) {
    lines.push(`  does not verify to a trusted root in ${roots}`);
  }
  lines.push(...findings(e.diagnostics, '  '));
  return lines;
}

function describeCert(cert: X509Certificate, i: number, what: string, now: Date): string[] {
  const from = notBefore(cert);
  const to = notAfter(cert);
  const left = daysLeft(to, now);
  const state =
    now < from ? 'not valid yet' : left < 0 ? `expired ${days(daysLeft(now, to))} ago` : `${days(left)} left`;
  const names = certificateNames(cert);
  return [
    `  #${i + 1} ${what}: ${oneLine(cert.subject)}`,
    `      issuer   ${oneLine(cert.issuer)}`,
    `      valid    ${stamp(from)} .. ${stamp(to)} (${state})`,
    ...(names.length > 0 ? [`      names    ${names.join(', ')}`] : []),
    `      CA       ${cert.ca ? 'yes' : 'no'}`,
  ];
}

function role(cert: X509Certificate, e: EntryInspection): string {
  const at = e.path.indexOf(cert);
  if (e.anchor && at < 0 && cert.raw.equals(e.anchor.raw)) return 'trusted root (not needed)';
  if (at === 0) return 'leaf';
  if (at > 0) return selfSigned(cert) ? 'root' : 'intermediate';
  return e.path.length > 0 ? 'not in the chain' : cert.ca ? 'CA' : 'certificate';
}

function findings(ds: Diagnostic[], indent: string): string[] {
  return ds.map((d) => `${indent}${d.severity}: ${d.message}`);
}

function stamp(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
