// The gateway's one logger. Request data is logged field by field (never whole headers), and
// redaction is a second line of defence for anything that carries credentials by name.
import { pino, type Logger, type DestinationStream } from 'pino';
import { boundedDestination, logBufferBytes, reportDrops } from './log-destination.js';

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

/** Lines batched into 4 KB writes, a bounded number of bytes waiting (log-destination.ts). */
export { boundedDestination as bufferedDestination } from './log-destination.js';

/** What a redacting logger applies to each line; the gateway's changes with the snapshot in force. */
export interface LineRedactor {
  fields(obj: Record<string, unknown>): Record<string, unknown>;
  error(err: Record<string, unknown> & { message: string; stack: string }): Record<string, unknown>;
}

/**
 * The gateway's logger: every line goes through the redactor `current()` returns at that moment
 * (masked keys from the policy in force, credentials, bodies; error messages scrubbed of what the
 * detectors recognise, as an error may quote an upstream body). pino's fixed redact paths are
 * dropped here: the redactor covers them, and it follows reloads where they could not.
 */
export function redactingLogger(logger: Logger, current: () => LineRedactor): Logger {
  return logger.child(
    {},
    {
      redact: { paths: [] },
      formatters: { log: (obj: object) => current().fields(obj as Record<string, unknown>) },
      serializers: {
        err: (err: unknown) => (err instanceof Error ? current().error(pino.stdSerializers.err(err)) : err),
      },
    },
  );
}

export function createLogger(opts: { level?: string; destination?: DestinationStream } = {}): Logger {
  const options = {
    level: opts.level ?? process.env.WXGW_LOG_LEVEL ?? 'info',
    base: { service: 'wxgw' },
    // ISO-8601 time and the level's name (`info`, not 30): what log pipelines and people read.
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  const logger = pino(options, opts.destination ?? boundedDestination(1, logBufferBytes(process.env.WXGW_LOG_BUFFER)));
  reportDrops(logger);
  return logger;
}

/**
 * The access log: one line per request, built field by field from values that never carry
 * credentials, its path and query scrubbed by the access log itself. The per-line redaction is
 * skipped here because it would walk every field of every request for nothing.
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] }, formatters: { log: (obj: object) => obj } });
}
