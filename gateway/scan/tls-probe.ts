// Pattern 1 from outside: the chain as the server sends it, judged the way a client will judge
// it (tls/chain.ts, against the system roots and any --ca root), the TLS versions it accepts and
// a few weak cipher suites. Each handshake is one send through the Prober.
//
//   probeTls(prober, report, { roots, now })

import { X509Certificate } from 'node:crypto';
import { checkServerIdentity, createSecureContext, rootCertificates, type DetailedPeerCertificate, type SecureVersion } from 'node:tls';
import { checkChain } from '../tls/chain.js';
import { dn, oneLine } from '../tls/format.js';
import type { TrustStore } from '../tls/roots.js';
import { failed, type Prober } from './prober.js';
import type { ReportBuilder } from './report.js';

export interface TlsProbeOptions {
  /** PEM roots from --ca, trusted besides the system roots. */
  privateRoots: X509Certificate[];
  caFile?: string;
  now: Date;
}

const VERSIONS: { version: SecureVersion; old: boolean }[] = [
  { version: 'TLSv1', old: true },
  { version: 'TLSv1.1', old: true },
  { version: 'TLSv1.2', old: false },
  { version: 'TLSv1.3', old: false },
];

/** TLS 1.2 suites no current client needs: static RSA key exchange (no forward secrecy), CBC with SHA-1, 3DES, RC4. */
const WEAK_CIPHERS = ['AES128-SHA', 'AES256-SHA', 'ECDHE-RSA-AES128-SHA', 'DES-CBC3-SHA', 'RC4-SHA'];

/** OpenSSL's security level 0: lets this client offer what servers must refuse. */
const ANYTHING = ':@SECLEVEL=0';

/** Whether this process's OpenSSL can offer the suite at all (asked locally: nothing is sent). */
function offerable(cipher: string): boolean {
  try {
    createSecureContext({ maxVersion: 'TLSv1.2', ciphers: cipher + ANYTHING });
    return true;
  } catch {
    return false;
  }
}

function trustStore(opts: TlsProbeOptions): TrustStore {
  const system = rootCertificates.map((pem) => new X509Certificate(pem));
  const description = opts.caFile ? `the system roots and ${opts.caFile}` : "the system roots (Node's bundled Mozilla CA list)";
  return { description, certs: [...opts.privateRoots, ...system], usable: true };
}

/** The certificates as received, leaf first (Node links them by issuer; the root only when sent). */
function servedChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = peer; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}

function aiaIssuers(cert: X509Certificate): string[] {
  return (cert.infoAccess ?? '')
    .split('\n')
    .filter((l) => l.startsWith('CA Issuers - URI:'))
    .map((l) => l.slice('CA Issuers - URI:'.length));
}

export async function probeTls(prober: Prober, report: ReportBuilder, opts: TlsProbeOptions): Promise<void> {
  const url = prober.url('/');
  // An empty CA list: OpenSSL then cannot complete the chain from a local store, so what Node
  // hands back is exactly what the server sent.
  const seen = await prober.handshake({ ca: [] }, (s) => ({
    peer: s.getPeerCertificate(true),
    protocol: s.getProtocol(),
    cipher: s.getCipher().name,
  }));
  if (failed(seen)) {
    report.add({ rule: 'WX1-CHAIN', level: 'error', message: `no TLS handshake with ${url}: ${seen.error}`, evidence: [], url });
  } else if (!seen.peer.raw) {
    report.add({ rule: 'WX1-CHAIN', level: 'error', message: 'the server sent no certificate', evidence: [], url });
  } else {
    judgeChain(prober, report, servedChain(seen.peer), seen.peer, opts);
  }

  const lines: string[] = [];
  const oldAccepted: string[] = [];
  const modern: string[] = [];
  for (const { version, old } of VERSIONS) {
    const r = await prober.handshake({ ca: [], minVersion: version, maxVersion: version, ...(old && { ciphers: `DEFAULT${ANYTHING}` }) }, (s) => s.getCipher().name);
    lines.push(`${version}: ${failed(r) ? `refused (${r.error})` : `accepted (${r})`}`);
    if (!failed(r)) (old ? oldAccepted : modern).push(version);
  }
  if (oldAccepted.length > 0) {
    report.add({ rule: 'WX1-TLS-VERSION', level: 'error', message: `${oldAccepted.join(' and ')} accepted`, evidence: lines, url });
  } else if (!modern.includes('TLSv1.2')) {
    report.add({ rule: 'WX1-TLS-VERSION', level: 'warning', message: 'TLS 1.2 is refused: older Android WeChat clients need it', evidence: lines, url });
  } else {
    report.add({ rule: 'WX1-TLS-VERSION', level: 'pass', message: `TLS 1.0 and 1.1 refused; ${modern.join(' and ')} accepted`, evidence: lines, url });
  }

  const accepted: string[] = [];
  const untestable: string[] = [];
  for (const cipher of WEAK_CIPHERS) {
    if (!offerable(cipher)) {
      untestable.push(cipher);
      continue;
    }
    if (!prober.fits(1)) break;
    const r = await prober.handshake({ ca: [], maxVersion: 'TLSv1.2', ciphers: cipher + ANYTHING }, (s) => s.getCipher().name);
    if (!failed(r)) accepted.push(cipher);
  }
  const evidence = [
    `tried: ${WEAK_CIPHERS.join(', ')}`,
    ...(untestable.length > 0 ? [`not testable with this OpenSSL (it cannot offer them): ${untestable.join(', ')}`] : []),
  ];
  if (accepted.length > 0) {
    report.add({ rule: 'WX1-WEAK-CIPHER', level: 'error', message: `weak cipher suites accepted: ${accepted.join(', ')}`, evidence, url });
  } else {
    report.add({ rule: 'WX1-WEAK-CIPHER', level: 'pass', message: 'no weak cipher suite accepted', evidence, url });
  }
}

function judgeChain(prober: Prober, report: ReportBuilder, chain: X509Certificate[], peer: DetailedPeerCertificate, opts: TlsProbeOptions): void {
  const url = prober.url('/');
  const evidence = chain.map((c, i) => `served #${i + 1}: ${dn(c)}, issued by ${dn(c, 'issuer')}`);
  const check = checkChain(chain, trustStore(opts), { now: opts.now, expiryWarning: 21 * 86_400_000 });
  const last = check.path[check.path.length - 1]!;
  if (!check.anchor && last.subject !== last.issuer) {
    const aia = aiaIssuers(last);
    evidence.push(
      `missing: the intermediate "${oneLine(last.issuer)}" (the issuer of ${dn(last)})` +
        (aia.length > 0 ? `; the certificate says it can be fetched from ${aia.join(', ')}` : '; the certificate names no AIA location for it'),
    );
  }
  if (check.anchor) evidence.push(`verifies to the trusted root ${dn(check.anchor)}`);
  const identity = checkServerIdentity(prober.target.host, peer);
  const errors = check.findings.filter((f) => f.severity === 'error');
  for (const f of errors) report.add({ rule: 'WX1-CHAIN', level: 'error', message: f.message, evidence, url });
  if (identity) {
    report.add({ rule: 'WX1-CHAIN', level: 'error', message: `the certificate does not cover ${prober.target.host}: ${identity.message}`, evidence, url });
  }
  for (const f of check.findings.filter((x) => x.severity === 'warning')) report.add({ rule: 'WX1-CHAIN', level: 'warning', message: f.message, evidence, url });
  if (errors.length === 0 && !identity) {
    report.add({ rule: 'WX1-CHAIN', level: 'pass', message: `complete chain of ${chain.length} certificate(s), valid for ${prober.target.host}`, evidence, url });
  }
}
