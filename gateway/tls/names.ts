// The names a certificate is valid for, from its subjectAltName.
//
//   certificateNames(cert) -> DNS names lower-case, then IP addresses (IPv6 compressed)

import type { X509Certificate } from 'node:crypto';

// Node prints `DNS:a, IP Address:1.2.3.4, email:b`, quoting (JSON-style) values that hold
// special characters, so a comma inside a quoted value does not end the entry.
const ENTRY = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;

export function certificateNames(cert: X509Certificate): string[] {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const [, kind, raw] of (cert.subjectAltName ?? '').matchAll(ENTRY)) {
    const value = raw!.startsWith('"') ? (JSON.parse(raw!) as string) : raw!;
    if (kind === 'DNS') dns.push(value.toLowerCase());
    else if (kind === 'IP Address') ips.push(value.includes(':') ? compressIpv6(value) : value);
  }
  return [...dns, ...ips];
}

// Node prints IPv6 in full (`0:0:0:0:0:0:0:1`); the URL parser writes the usual short form.
function compressIpv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
