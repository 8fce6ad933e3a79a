// Certificate issuing for the dev chain and for tests: root CA -> intermediate CA -> leaf.
//
//   issueRoot(opts)                    self-signed CA
//   issueIntermediate(issuer, opts)    CA issued by `issuer`
//   issueLeaf(issuer | null, opts)     server certificate; `null` issues it self-signed
//   encryptKey(keyPem, passphrase)     the same key as encrypted PKCS#8
//
// forge builds the certificate (Node cannot) and Node's crypto makes the RSA 2048 keys and the
// signature, both many times faster than forge's pure-JS RSA. forge encodes only RSA public keys,
// hence RSA throughout. Everything is PEM; keys are unencrypted PKCS#8.

import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as rsaSign } from 'node:crypto';
import forge from 'node-forge';

declare module 'node-forge' {
  namespace pki {
    // In forge since 0.x (cert.sign uses it), missing from @types/node-forge.
    function getTBSCertificate(cert: Certificate): asn1.Asn1;
  }
}

/** A certificate and its private key, both PEM. */
export interface Issued {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Subject common name. */
  cn: string;
  /** Defaults to one hour ago, so that small clock differences do not matter. */
  notBefore?: Date;
  /** Defaults to `notBefore` plus `days`. */
  notAfter?: Date;
  /** Validity in days when `notAfter` is not given; defaults to 365. */
  days?: number;
  /** PEM RSA private key to certify (e.g. to renew with the same key); a fresh one by default. */
  key?: string;
}

export interface LeafOptions extends IssueOptions {
  /** DNS subjectAltNames; defaults to `[cn]`. With no DNS and no IP names there is no SAN. */
  dns?: string[];
  /** IPv4/IPv6 subjectAltNames. */
  ips?: string[];
  /** Extended key usages; defaults to `['serverAuth']`, an empty list leaves the extension out. */
  extendedKeyUsage?: Array<'serverAuth' | 'clientAuth'>;
  /** An Authority Information Access "CA Issuers" URI: where clients may fetch the issuer. */
  caIssuers?: string;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export function issueRoot(opts: IssueOptions): Issued {
  const key = opts.key ?? newKey();
  return sign(key, key, null, opts, caExtensions(null));
}

export function issueIntermediate(issuer: Issued, opts: IssueOptions): Issued {
  const issuerCert = forge.pki.certificateFromPem(issuer.cert);
  return sign(opts.key ?? newKey(), issuer.key, issuerCert, opts, caExtensions(issuerCert));
}

export function issueLeaf(issuer: Issued | null, opts: LeafOptions): Issued {
  const key = opts.key ?? newKey();
  const issuerCert = issuer ? forge.pki.certificateFromPem(issuer.cert) : null;
  const altNames = [
    ...(opts.dns ?? [opts.cn]).map((value) => ({ type: 2, value })),
    ...(opts.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const eku = opts.extendedKeyUsage ?? ['serverAuth'];
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    // An empty SAN extension is invalid; no names means no extension.
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    ...(issuerCert ? [authorityKeyId(issuerCert)] : []),
    ...(opts.caIssuers ? [authorityInfoAccess(opts.caIssuers)] : []),
  ];
  if (eku.length > 0) {
    extensions.push({ name: 'extKeyUsage', ...Object.fromEntries(eku.map((u) => [u, true])) });
  }
  return sign(key, issuer ? issuer.key : key, issuerCert, opts, extensions);
}

/** Re-encodes a PEM private key as encrypted PKCS#8 (AES-256-CBC). */
export function encryptKey(keyPem: string, passphrase: string): string {
  return createPrivateKey(keyPem)
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
    .toString();
}

function newKey(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

function caExtensions(issuerCert: forge.pki.Certificate | null): object[] {
  return [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    ...(issuerCert ? [authorityKeyId(issuerCert)] : []),
  ];
}

function authorityKeyId(issuerCert: forge.pki.Certificate): object {
  return {
    name: 'authorityKeyIdentifier',
    keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes(),
  };
}

const CA_ISSUERS = '1.3.6.1.5.5.7.48.2';
const AIA = '1.3.6.1.5.5.7.1.1';

/** forge has no encoder for this extension: SEQUENCE { SEQUENCE { caIssuers, [6] uri } }. */
function authorityInfoAccess(uri: string): object {
  const { asn1 } = forge;
  const description = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(CA_ISSUERS).getBytes()),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, uri),
  ]);
  return { id: AIA, value: asn1.toDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [description])).getBytes() };
}

/** Certifies the public half of `key` (PEM) and signs with `signingKey` (PEM). */
function sign(
  key: string,
  signingKey: string,
  issuerCert: forge.pki.Certificate | null,
  opts: IssueOptions,
  extensions: object[],
): Issued {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString());
  // Positive 128-bit serial: the high bit cleared keeps the DER INTEGER unsigned.
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  const notBefore = opts.notBefore ?? new Date(Date.now() - HOUR);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = opts.notAfter ?? new Date(notBefore.getTime() + (opts.days ?? 365) * DAY);
  const subject = [{ name: 'commonName', value: opts.cn }];
  cert.setSubject(subject);
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  cert.setExtensions(extensions);
  // What forge's cert.sign() does, with Node's RSA in place of forge's.
  const oid = forge.pki.oids['sha256WithRSAEncryption']!;
  cert.siginfo.algorithmOid = oid;
  cert.signatureOid = oid;
  const tbs = forge.asn1.toDer(forge.pki.getTBSCertificate(cert)).getBytes();
  cert.signature = rsaSign('sha256', Buffer.from(tbs, 'binary'), signingKey).toString('binary');
  return { cert: forge.pki.certificateToPem(cert), key };
}
