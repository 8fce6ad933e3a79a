// Reading a certificate entry's private key and checking that it belongs to the leaf.
//
//   readKey(file, passphrase?) -> { ok, pem, key } | { ok: false, problem }   never throws
//   keyMatches(key, leaf)      -> boolean   compares the public halves

import { createPrivateKey, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { KEY_TYPES, readPemFile } from './pem.js';

export type KeyFile = { ok: true; pem: string; key: KeyObject } | { ok: false; problem: string };

export function readKey(file: string, passphrase: string | undefined): KeyFile {
  const read = readPemFile(file, 'key');
  if (!read.ok) return read;
  const keys = read.blocks.filter((b) => KEY_TYPES.has(b.type));
  const block = keys[0];
  if (!block) {
    if (read.blocks.some((b) => b.type === 'CERTIFICATE')) {
      return {
        ok: false,
        problem:
          'holds a certificate, not a private key: are cert and key swapped? key must name the ' +
          'private key file (e.g. privkey.pem)',
      };
    }
    const found = [...new Set(read.blocks.map((b) => b.type))].join(', ');
    return { ok: false, problem: `holds ${found}, not a private key: expected -----BEGIN PRIVATE KEY-----` };
  }
  if (keys.length > 1) {
    return { ok: false, problem: `holds ${keys.length} private keys: keep only the key of this certificate` };
  }
  const encrypted = block.type === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type:\s*4,ENCRYPTED/m.test(block.text);
  if (encrypted && passphrase === undefined) {
    return {
      ok: false,
      problem: 'the private key is encrypted and no passphrase is set: add passphrase to this certificate entry',
    };
  }
  try {
    return { ok: true, pem: block.text, key: createPrivateKey({ key: block.text, passphrase }) };
  } catch (err) {
    if (encrypted) {
      return { ok: false, problem: 'the private key cannot be decrypted with the configured passphrase: check it' };
    }
    return { ok: false, problem: `the private key cannot be parsed: ${(err as Error).message}` };
  }
}

export function keyMatches(key: KeyObject, leaf: X509Certificate): boolean {
  const der = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  return der(createPublicKey(key)).equals(der(leaf.publicKey));
}
