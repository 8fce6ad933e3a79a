// Reading PEM files and saying plainly what a file holds when it is not what was expected.
//
//   parsePem(text)           -> PemBlock[]              every BEGIN/END block, in order
//   readPemFile(file, role)  -> { blocks } | { problem }  never throws
//   fileError(err)           -> "no such file or directory (ENOENT)"

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { shownPath } from '../shown-path.js';

export interface PemBlock {
  /** The label, e.g. `CERTIFICATE`, `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`. */
  type: string;
  /** The whole block, BEGIN and END lines and any headers included. */
  text: string;
}

export type PemRole = 'certificate' | 'key' | 'CA bundle';

export type PemFile = { ok: true; blocks: PemBlock[] } | { ok: false; problem: string };

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

export const KEY_TYPES = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);

export function parsePem(text: string): PemBlock[] {
  return [...text.matchAll(BLOCK)].map((m) => ({ type: m[1]!, text: m[0] }));
}

/** Reads a file that should hold PEM blocks; `problem` says what is there instead. */
export function readPemFile(file: string, role: PemRole): PemFile {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    return { ok: false, problem: `cannot read the ${role} file: ${fileError(err)}` };
  }
  const expected = role === 'key' ? '-----BEGIN PRIVATE KEY-----' : '-----BEGIN CERTIFICATE-----';
  const text = data.toString('utf8');
  if (text.trim() === '') return { ok: false, problem: `the ${role} file is empty: expected PEM (${expected})` };
  const blocks = parsePem(text);
  if (blocks.length > 0) return { ok: true, blocks };
  // DER is an ASN.1 SEQUENCE; try to tell a certificate from a key so the hint fits.
  if (data[0] === 0x30) {
    const der = describeDer(data);
    if (der) {
      const tool = der === 'certificate' ? 'x509' : 'pkey';
      const convert = `openssl ${tool} -inform der -in ${shownPath(file)} -out ${shownPath(file)}.pem`;
      return { ok: false, problem: `holds a DER (binary) ${der}, not PEM: convert it with \`${convert}\`` };
    }
  }
  return { ok: false, problem: `holds no PEM block: expected ${expected}` };
}

function describeDer(data: Buffer): 'certificate' | 'private key' | null {
  try {
    new X509Certificate(data);
    return 'certificate';
  } catch {
    // not a certificate; maybe a key
  }
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      createPrivateKey({ key: data, format: 'der', type });
      return 'private key';
    } catch {
      // try the next encoding
    }
  }
  return null;
}

/** The OS error of a failed read, without Node's repetition of the path. */
export function fileError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const m = /^[A-Z]+: (.*?), \w+(?: '.*')?$/.exec(err.message);
  return m && code ? `${m[1]} (${code})` : err.message;
}
