// TLS options for https.createServer: protocol floor, AEAD-only ciphers, the first certificate
// as the default (clients without SNI) and all of them chosen by SNI.
//
//   buildTlsServerOptions(tls, certificates, sni?) -> https.ServerOptions
//   defaultContextOptions(tls, certificates)       -> what server.setSecureContext takes on reload
//
// Pass your own SniSelector to keep a handle on the certificate table the server reads.

import type { ServerOptions } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { TlsConfig } from '../policy/types.js';
import type { LoadedCertificate } from './load.js';
import { protocolOptions } from './protocol.js';
import { SniSelector } from './sni.js';

export function buildTlsServerOptions(
  tls: TlsConfig,
  certificates: readonly LoadedCertificate[],
  sni: SniSelector = new SniSelector(certificates),
): ServerOptions {
  return { ...defaultContextOptions(tls, certificates), SNICallback: sni.callback };
}

export function defaultContextOptions(tls: TlsConfig, certificates: readonly LoadedCertificate[]): SecureContextOptions {
  const first = certificates[0];
  if (!first) throw new Error('buildTlsServerOptions needs at least one loaded certificate');
  return { ...first.contextOptions, ...protocolOptions(tls) };
}
