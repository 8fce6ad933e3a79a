// TLS options for https.createServer: protocol floor, AEAD-only ciphers, the first certificate
// as the default (clients without SNI) and all of them chosen by SNI.
//
//   handshakeTls(tls, certificates) -> what one policy's handshakes read
//   liveTlsServerOptions(current)   -> https.ServerOptions reading current() per handshake

import type { ServerOptions } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { TlsConfig } from '../types/policy.js';
import type { LoadedCertificate } from './load.js';
import { protocolOptions } from './protocol.js';
import { SniSelector } from './sni.js';

/** One policy's certificate selection, built once with it and never changed. */
export interface HandshakeTls {
  readonly sni: SniSelector;
  /** The default context's options: Node serves clients that send no SNI from the server's own context. */
  readonly defaultOptions: SecureContextOptions;
}

export function handshakeTls(tls: TlsConfig, certificates: readonly LoadedCertificate[]): HandshakeTls {
  return Object.freeze({ sni: new SniSelector(certificates), defaultOptions: defaultContextOptions(tls, certificates) });
}

/**
 * Server options whose SNI selection is read from `current()` on every handshake, so that putting
 * another HandshakeTls in force needs no call on the server. The default context (no SNI) is the
 * server's own and must follow separately (server.setSecureContext).
 */
export function liveTlsServerOptions(current: () => HandshakeTls): ServerOptions {
  return {
    ...current().defaultOptions,
    SNICallback: (servername, cb) => cb(null, current().sni.select(servername)),
  };
}

function defaultContextOptions(tls: TlsConfig, certificates: readonly LoadedCertificate[]): SecureContextOptions {
  const first = certificates[0];
  if (!first) throw new Error('TLS server options need at least one loaded certificate');
  return { ...first.contextOptions, ...protocolOptions(tls) };
}
