// Wording shared by the TLS diagnostics and the `wxgw certs` report.
//
//   dn(cert)           `"CN=api.example.com"`: a certificate's subject, quoted, on one line
//   day(date)          `2026-03-01`
//   daysLeft(to, now)  whole days from now until `to` (rounded down, negative once passed)
//   days(n)            `1 day`, `5 days`

import type { X509Certificate } from 'node:crypto';

const DAY = 86_400_000;

export function dn(cert: X509Certificate, field: 'subject' | 'issuer' = 'subject'): string {
  return `"${oneLine(cert[field])}"`;
}

export function oneLine(name: string): string {
  return name.split('\n').join(', ');
}

export function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function daysLeft(to: Date, now: Date): number {
  return Math.floor((to.getTime() - now.getTime()) / DAY);
}

export function days(n: number): string {
  return `${n} day${n === 1 ? '' : 's'}`;
}

export function notBefore(cert: X509Certificate): Date {
  return new Date(cert.validFrom);
}

export function notAfter(cert: X509Certificate): Date {
  return new Date(cert.validTo);
}
