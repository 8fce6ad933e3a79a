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

/**
 * Lines are gathered into 4 KB writes, flushed at least every 250 ms and on exit. One write per
 * line (pino's default for stdout) cost about a tenth of the CPU of a proxied request.
 */
export function bufferedDestination(dest: number | string = 1): DestinationStream {
  return pino.destination({ dest, sync: false, minLength: 4096, periodicFlush: 250 });
}

/**
 * The logger with the policy's masked keys redacted too (session_key, phone...), so a field masked
 * in responses cannot reappear in wxgw's own log lines, and error messages scrubbed of what the
 * detectors recognise (an error may quote an upstream body).
 */
export function withRedaction(logger: Logger, extraPaths: readonly string[], scrub: (text: string) => string): Logger {
  return logger.child(
    {},
    {
      redact: { paths: [...REDACT, ...extraPaths], censor: '[redacted]' },
      serializers: {
        err: (err: unknown) => {
          if (!(err instanceof Error)) return err;
          const shown = pino.stdSerializers.err(err);
          return { ...shown, message: scrub(shown.message), stack: scrub(shown.stack) };
        },
      },
    },
  );
}

export function createLogger(opts: { level?: string; destination?: DestinationStream } = {}): Logger {
  const options = {
    level: opts.level ?? process.env.WXGW_LOG_LEVEL ?? 'info',
    base: { service: 'wxgw' },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  return pino(options, opts.destination ?? bufferedDestination());
}

/**
 * The access log: one line per request, built field by field from values that never carry
 * credentials (the path is logged without its query). Redaction is skipped here because it
 * costs more than the rest of the line, on every request.
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}
