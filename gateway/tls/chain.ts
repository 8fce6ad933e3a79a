// Chain verification as a client will do it, but with messages that say what to change.
//
//   checkChain(certs, store, { now, expiryWarning }) -> { findings, path, anchor }
//   selfSigned(cert) -> boolean
//
// `certs` is the file as served. The walk starts at the leaf and at each step looks for the
// issuer first among the trusted roots (as OpenSSL does by default, so a cross-signed root
// served for old clients does not hide a trusted one), then right after the current certificate,
// then anywhere else in the file (which is reported as wrong order). Findings carry no file
// name; the caller prefixes it.

import type { X509Certificate } from 'node:crypto';
import type { Severity } from '../types/policy.js';
import { day, days, daysLeft, dn, notAfter, notBefore } from './format.js';
import type { TrustStore } from './roots.js';

export interface Finding {
  severity: Severity;
  message: string;
}

export interface ChainCheck {
  findings: Finding[];
  /** Leaf first, each certificate followed by its issuer, as far as the walk got (file copies). */
  path: X509Certificate[];
  /** The trusted root the chain reaches, or null when it reaches none. */
  anchor: X509Certificate | null;
}

export interface ChainCheckOptions {
  now: Date;
  /** Milliseconds before the leaf's notAfter from which expiry is a warning. */
  expiryWarning: number;
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_EKU = '2.5.29.37.0';
const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};

/** `issuer` signed `cert`: names, key identifiers and key usage fit and the signature verifies. */
function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

// Not issued(cert, cert): checkIssued also wants keyCertSign, which a self-signed leaf lacks.
export function selfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

export function checkChain(certs: readonly X509Certificate[], store: TrustStore, opts: ChainCheckOptions): ChainCheck {
  const findings: Finding[] = [];
  const error = (message: string): void => void findings.push({ severity: 'error', message });
  const warning = (message: string): void => void findings.push({ severity: 'warning', message });
  const at = (c: X509Certificate): string => position(c, certs);

  const first = certs[0];
  if (!first) throw new Error('checkChain needs at least one certificate');

  // Only the first misplacement is worded; the fix then lists the whole order.
  let misorder: { text: string; index: number } | null = null;
  let leaf = first;
  if (first.ca) {
    const served = certs.find((c) => !c.ca);
    if (served) {
      misorder = { text: `the server certificate ${at(served)} must come first, before ${at(first)}`, index: 0 };
      leaf = served;
    } else {
      error(
        `${dn(first)} is a CA certificate, not a server certificate: the file must start with the ` +
          `server's own certificate (the leaf), followed by its intermediates`,
      );
    }
  }
  const selfSignedLeaf = !leaf.ca && selfSigned(leaf);
  if (!leaf.ca) checkLeaf(leaf, selfSignedLeaf, error);
  checkValidity(leaf, 'leaf', opts, error, warning);

  const path = [leaf];
  const used = new Set(path);
  let anchor: X509Certificate | null = null;
  let cur = leaf;
  while (!selfSignedLeaf) {
    const root = store.certs.find((r) => issued(r, cur));
    if (root) {
      anchor = root;
      break;
    }
    if (selfSigned(cur)) {
      if (store.usable) {
        error(
          `ends at the self-signed ${dn(cur)}, which is not a trusted root in ${store.description}: ` +
            `serve a chain issued by a trusted CA, or trust this root`,
        );
      }
      break;
    }
    const next = certs[certs.indexOf(cur) + 1];
    let issuer = next && !used.has(next) && issued(next, cur) ? next : undefined;
    if (!issuer) {
      issuer = certs.find((c) => !used.has(c) && issued(c, cur));
      if (issuer && !misorder) {
        misorder = { text: `${at(issuer)} must come right after ${at(cur)}, which it issued`, index: findings.length };
      }
    }
    if (!issuer) {
      const problem = missingIssuer(cur, certs, store);
      if (problem) error(problem);
      break;
    }
    if (!issuer.ca) {
      error(`${at(issuer)} is not a CA certificate, so clients will not accept it as the issuer of ${dn(cur)}`);
    }
    checkValidity(issuer, 'intermediate', opts, error, warning);
    path.push(issuer);
    used.add(issuer);
    cur = issuer;
  }

  if (misorder) {
    const order = path.map((c) => `#${certs.indexOf(c) + 1}`).join(', ');
    findings.splice(misorder.index, 0, {
      severity: 'error',
      message: `in the wrong order: ${misorder.text}; serve the leaf first, then each certificate's issuer (${order})`,
    });
  }
  if (anchor) {
    checkValidity(anchor, 'root', opts, error, warning);
    for (const c of certs) {
      if (used.has(c)) continue;
      if (c.raw.equals(anchor.raw)) {
        warning(
          `includes the trusted root ${at(c)}: clients already have it, so sending it only ` +
            `lengthens every handshake; you may remove it`,
        );
      } else {
        warning(`${at(c)} is not needed to reach the trusted root ${dn(anchor)}: you may remove it`);
      }
    }
  }
  return { findings, path, anchor };
}

function checkLeaf(leaf: X509Certificate, selfSigned: boolean, error: (m: string) => void): void {
  if (selfSigned) {
    error(
      `${dn(leaf)} is self-signed: clients, WeChat included, reject it; serve a certificate issued ` +
        `by a CA, followed by its intermediates`,
    );
  }
  const eku = leaf.keyUsage;
  if (eku && eku.length > 0 && !eku.includes(SERVER_AUTH) && !eku.includes(ANY_EKU)) {
    const names = eku.map((oid) => EKU_NAMES[oid] ?? oid).join(', ');
    error(
      `${dn(leaf)} is not valid for a server: its extended key usage allows only ${names}, ` +
        `not serverAuth; have it reissued for TLS server authentication`,
    );
  }
  if (!leaf.subjectAltName) {
    error(
      `${dn(leaf)} has no subjectAltName: clients match the host name only against it; have the ` +
        `certificate reissued with the host names as DNS subjectAltNames`,
    );
  }
}

function position(cert: X509Certificate, certs: readonly X509Certificate[]): string {
  return `${dn(cert)} (certificate #${certs.indexOf(cert) + 1})`;
}

type Role = 'leaf' | 'intermediate' | 'root';

const ROLE: Record<Role, { name: string; renew: string }> = {
  leaf: { name: 'the certificate', renew: 'renew it' },
  intermediate: { name: 'the intermediate', renew: 'get the current one from your CA and serve it instead' },
  root: { name: 'the trusted root', renew: 'update the trusted roots' },
};

function checkValidity(
  cert: X509Certificate,
  role: Role,
  opts: ChainCheckOptions,
  error: (m: string) => void,
  warning: (m: string) => void,
): void {
  const { name, renew } = ROLE[role];
  const from = notBefore(cert);
  const to = notAfter(cert);
  if (opts.now < from) {
    const wait = daysLeft(from, opts.now);
    const when = wait < 1 ? 'in less than a day' : `in ${days(wait)}`;
    error(
      `${name} ${dn(cert)} is not valid yet: it starts on ${day(from)} (${when}); ` +
        `check the server's clock, or serve the previous certificate until then`,
    );
  } else if (opts.now >= to) {
    const ago = daysLeft(opts.now, to);
    error(`${name} ${dn(cert)} expired on ${day(to)} (${ago < 1 ? 'today' : `${days(ago)} ago`}): ${renew}`);
  } else if (role === 'leaf' && to.getTime() - opts.now.getTime() < opts.expiryWarning) {
    warning(`${name} ${dn(cert)} expires on ${day(to)}, in ${days(daysLeft(to, opts.now))}: renew it soon`);
  }
}

/** Why no issuer of `cert` was found; empty when the trust store itself is broken. */
function missingIssuer(cert: X509Certificate, certs: readonly X509Certificate[], store: TrustStore): string {
  // A certificate of the issuer's name that did not sign it: usually the CA's other (older or
  // newer) intermediate of the same name.
  const namesake = certs.find((c) => c !== cert && c.subject === cert.issuer);
  if (namesake) {
    return (
      `${position(namesake, certs)} has the name of the issuer of ${dn(cert)}, but not its key: it is ` +
      `another certificate of the same name; serve the intermediate your CA issued together with this certificate`
    );
  }
  if (!store.usable) return '';
  if (!cert.ca) {
    return (
      `chain incomplete: ${dn(cert)} is issued by ${dn(cert, 'issuer')}, which is neither in this ` +
      `file nor a trusted root: serve the full chain (leaf followed by intermediates), e.g. fullchain.pem`
    );
  }
  return (
    `${dn(cert)} is issued by ${dn(cert, 'issuer')}, which is not a trusted root in ${store.description}: ` +
    `if ${dn(cert, 'issuer')} is an intermediate, add it to this file after ${dn(cert)}; if it is ` +
    `your own CA, trust it with tls.roots`
  );
}
