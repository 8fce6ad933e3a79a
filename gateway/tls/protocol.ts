// Protocol settings shared by every secure context the gateway builds, so that a context chosen
// by SNI negotiates exactly like the default one.
//
//   protocolOptions(tls) -> { minVersion, maxVersion, ciphers, honorCipherOrder }

import type { SecureContextOptions, SecureVersion } from 'node:tls';
import type { TlsConfig } from '../types/policy.js';

// TLS 1.3 suites are named explicitly: a cipher list without them would disable TLS 1.3.
// TLS 1.2 is limited to forward-secret AEAD suites (Mozilla's "intermediate" profile minus DHE).
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export type ProtocolOptions = Required<
  Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers' | 'honorCipherOrder'>
>;

export function protocolOptions(tls: TlsConfig): ProtocolOptions {
  // Mapped rather than passed through, so no value can ever lower the floor below TLS 1.2.
  const minVersion: SecureVersion = tls.min_version === 'TLSv1.3' ? 'TLSv1.3' : 'TLSv1.2';
  return { minVersion, maxVersion: 'TLSv1.3', ciphers: CIPHERS, honorCipherOrder: true };
}
