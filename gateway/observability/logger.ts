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

/**
 * The access log: one line per request, built field by field from values that never carry
 * credentials (the path is logged without its query). Redaction is skipped here because it
 * costs more than the rest of the line, on every request.
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}
