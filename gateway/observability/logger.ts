// The gateway's one logger. Request data is logged field by field (never whole headers), and
// redaction is a second line of defence for anything that carries credentials by name.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

const REDACT = [
  'authorization',
  'cookie',
  'passphrase',
  '*.authorization',
  '*.cookie',
  '*.passphrase',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
];

export function createLogger(opts: { level?: string; destination?: DestinationStream } = {}): Logger {
  const options = {
    level: opts.level ?? process.env.WXGW_LOG_LEVEL ?? 'info',
    base: { service: 'wxgw' },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
