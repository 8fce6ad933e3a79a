// TLS towards an https:// upstream: the CA bundle it must chain to, the pins its certificate
// must match, the client certificate the gateway shows it. Files are read when a snapshot is
// compiled (start and every reload), and a file that is not what its key says is a policy error
// that names the file and what is wrong, as for the listener's certificates.
//
//   loadUpstreamTls(config, now?) -> UpstreamTls             throws PolicyError
//   spkiPin(cert)                 -> base64 SHA-256 of its SubjectPublicKeyInfo
//   PIN_MISMATCH                  the error code of a certificate that matches no pin

import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { PolicyError, type Diagnostic, type UpstreamTlsConfig } from '../types/policy.js';
import { shownPath } from '../shown-path.js';
import { keyMatches, readKey } from './key.js';
import { readPemFile } from './pem.js';

export const PIN_MISMATCH = 'ERR_WXGW_UPSTREAM_PIN_MISMATCH';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface UpstreamTls {
  /** For tls.connect(): ca, cert, key, servername and the pin check. Holds a private key: never log it. */
  readonly options: ConnectionOptions;
  /** Hashes what the files held: a reload that changes one gets fresh connections. */
  readonly fingerprint: string;
}

export function spkiPin(cert: X509Certificate): string {
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

export function loadUpstreamTls(config: UpstreamTlsConfig, now = new Date()): UpstreamTls {
  const problems: Diagnostic[] = [];
  const problem = (key: keyof UpstreamTlsConfig['files'], file: string, what: string): void => {
    const { file: policyFile, line, col, path } = config.files[key] ?? { ...config.pos, path: `${config.pos.path}.${key}` };
    problems.push({ severity: 'error', file: policyFile, line, col, path, message: `${shownPath(file)}: ${what}` });
  };
  const options: ConnectionOptions = {};
  const hash = createHash('sha256');
  if (config.ca) {
    const ca = certificates(config.ca, 'CA bundle', (what) => problem('ca', config.ca!, what));
    if (ca) {
      options.ca = ca.map((c) => c.toString());
      hash.update(options.ca.join(''));
    }
  }
  if (config.client_cert && config.client_key) {
    const chain = certificates(config.client_cert, 'certificate', (what) => problem('client_cert', config.client_cert!, what));
    const key = readKey(config.client_key, undefined);
    if (!key.ok) problem('client_key', config.client_key, key.problem);
    const leaf = chain?.[0];
    if (leaf) {
      const usages = leaf.keyUsage;
      if (usages && usages.length > 0 && !usages.includes(CLIENT_AUTH)) {
        problem('client_cert', config.client_cert, `the certificate ${leaf.subject.replace(/\n/g, ', ')} is not for client authentication (its extended key usage lacks clientAuth): the upstream would refuse it`);
      }
      if (new Date(leaf.validTo) < now) problem('client_cert', config.client_cert, `the certificate expired on ${new Date(leaf.validTo).toISOString()}`);
      if (key.ok && !keyMatches(key.key, leaf)) {
        problem('client_key', config.client_key, `this key does not belong to the certificate in ${shownPath(config.client_cert)}: are the files from the same issuance?`);
      }
    }
    if (chain && key.ok) {
      options.cert = chain.map((c) => c.toString()).join('');
      options.key = key.pem;
      hash.update(options.cert).update(key.pem);
    }
  }
  if (problems.length > 0) throw new PolicyError(problems);
  if (config.servername) options.servername = config.servername;
  const pins = new Set(config.pin);
  if (pins.size > 0) options.checkServerIdentity = (host, cert) => checkServerIdentity(host, cert) ?? pinned(pins, cert);
  hash.update(JSON.stringify([config.pin, config.servername ?? '']));
  return Object.freeze({ options: Object.freeze(options), fingerprint: hash.digest('base64') });
}

/** The certificates of a PEM file, or undefined after reporting what the file holds instead. */
function certificates(file: string, role: 'CA bundle' | 'certificate', report: (what: string) => void): X509Certificate[] | undefined {
  const read = readPemFile(file, role);
  if (!read.ok) {
    report(read.problem);
    return undefined;
  }
  const blocks = read.blocks.filter((b) => b.type === 'CERTIFICATE');
  if (blocks.length === 0) {
    const found = [...new Set(read.blocks.map((b) => b.type))].join(', ');
    report(`holds ${found}, not a certificate: expected -----BEGIN CERTIFICATE-----${role === 'certificate' ? ' (are client_cert and client_key swapped?)' : ''}`);
    return undefined;
  }
  const parsed: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      parsed.push(new X509Certificate(block.text));
    } catch (err) {
      report(`certificate ${i + 1} in the file cannot be parsed: ${(err as Error).message}`);
      return undefined;
    }
  }
  return parsed;
}

/** A pin matches the leaf or any certificate above it in the chain the upstream presented. */
function pinned(pins: ReadonlySet<string>, leaf: PeerCertificate): Error | undefined {
  const seen = new Set<PeerCertificate>();
  for (let c: PeerCertificate | undefined = leaf; c && !seen.has(c); c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate) {
    seen.add(c);
    if (pins.has(spkiPin(new X509Certificate(c.raw)))) return undefined;
  }
  const err = new Error(`the upstream's certificate (${leaf.subject?.CN ?? 'no common name'}) matches none of the pins; its public key is sha256 ${spkiPin(new X509Certificate(leaf.raw))}`);
  (err as NodeJS.ErrnoException).code = PIN_MISMATCH;
  return err;
}
