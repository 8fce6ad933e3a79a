// Where the gateway's log lines go: stdout (or a file), written in batches, with a bounded
// buffer. A reader that stops reading (a stuck log shipper, a full pipe) must not make the
// gateway's memory grow: past the bound, lines are dropped and counted, and the first write the
// destination accepts again is followed by one line saying how many were lost.
//
// The bound is SonicBoom's own `maxLength` (pino's destination), so keeping a line costs nothing
// more than before; only a dropped line runs code of ours (a counter).
import { pino, type Logger } from 'pino';

/** Enough for seconds of a busy gateway's access log, small beside its other memory. */
export const DEFAULT_LOG_BUFFER = 4 * 1024 * 1024;
/** At exit, how many times (100 ms apart) a full destination is tried before the rest is given up. */
const EXIT_RETRIES = 10;
/** Below this a stack trace or a long path would not fit, and every line past the first few would go. */
const MIN_LOG_BUFFER = 64 * 1024;

interface Drops {
  total: number;
  /** Dropped since the last report; while > 0 a report is due on the next accepted write. */
  unreported: number;
  report: ((dropped: number) => void) | undefined;
  /** Nobody will ever read what is written (readerGone): the exit writes nothing more. */
  gone: boolean;
}

const drops = new WeakMap<object, Drops>();

const SIZE = /^(\d+)(b|kb|mb|gb)$/;
const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/**
 * The bound in bytes from WXGW_LOG_BUFFER (`4mb`, `512kb`: the policy's size units), or the
 * default. The logger exists before the policy is read and outlives every reload, so its bound is
 * the process's, like WXGW_LOG_LEVEL, not the policy's. Throws on a value that is not a size.
 */
export function logBufferBytes(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_LOG_BUFFER;
  const m = SIZE.exec(raw.trim().toLowerCase());
  const shown = `WXGW_LOG_BUFFER=${JSON.stringify(raw)}`;
  if (!m) throw new Error(`${shown} is not a size; expected a whole number and a unit with no space: b, kb, mb or gb (e.g. 512kb, 4mb)`);
  const bytes = Number(m[1]) * UNITS[m[2]!]!;
  if (bytes < MIN_LOG_BUFFER) throw new Error(`${shown} is below the minimum of 64kb`);
  return bytes;
}

/**
 * Lines are gathered into 4 KB writes, flushed at least every 250 ms and on exit. One write per
 * line (pino's default for stdout) cost about a tenth of the CPU of a proxied request. At most
 * `maxBytes` wait to be written; lines beyond are dropped and counted.
 */
export function boundedDestination(dest: number | string = 1, maxBytes = DEFAULT_LOG_BUFFER): ReturnType<typeof pino.destination> {
  // Node opens stdout non-blocking (when it is a pipe or a socket) the first time it is used.
  // Opened now, a reader that stops makes writes fail with EAGAIN and be retried, instead of
  // holding one of libuv's four threads (and, at exit, the main thread) until it reads again.
  if (dest === 1) void process.stdout;
  let exiting = false;
  let exitRetries = 0;
  const stream = pino.destination({
    dest,
    sync: false,
    minLength: 4096,
    maxLength: maxBytes,
    periodicFlush: 250,
    // While running, a full pipe is retried forever (writes are asynchronous, nothing waits); at
    // exit, where the write is synchronous, only for a second.
    retryEAGAIN: () => !exiting || ++exitRetries <= EXIT_RETRIES,
  });
  const d: Drops = { total: 0, unreported: 0, report: undefined, gone: false };
  drops.set(stream, d);
  // pino writes what is left synchronously on exit; a destination that is not taking writes must
  // not hold the process (SIGTERM, a fatal error) for as long as its reader is stuck.
  const flushSync = stream.flushSync.bind(stream);
  stream.flushSync = () => {
    exiting = true;
    // Dropping lines: nothing has been written since the buffer filled, and a write would wait.
    // A reader gone for good: SonicBoom 4's flushSync retries a write that fails with EPIPE
    // forever, which would hold the exit for good.
    if (d.unreported > 0 || d.gone) return;
    try {
      flushSync();
    } catch {
      // Still full after the retries: the rest is lost, as it would be past the buffer.
    }
  };
  // 'write' fires inside SonicBoom's bookkeeping, before the written bytes leave its buffer:
  // the report waits a turn so that it lands in the room just made.
  const report = (): void => {
    setImmediate(() => {
      const n = d.unreported;
      d.unreported = 0;
      // A report that is itself dropped counts as one more line and re-arms the next one.
      d.report?.(n);
    });
  };
  stream.on('drop', () => {
    d.total++;
    if (d.unreported++ === 0) stream.once('write', report);
  });
  return stream;
}

/**
 * The reader of the logger's destination is gone for good (a cluster worker whose primary, the
 * reader of its stdout, died): the lines still buffered at exit are given up rather than retried.
 */
export function readerGone(logger: Logger): void {
  const d = drops.get(destinationOf(logger));
  if (d) d.gone = true;
}

/** Has the logger's destination (when it is a bounded one) say how many lines it dropped, once it writes again. */
export function reportDrops(logger: Logger): void {
  const d = drops.get(destinationOf(logger));
  if (d) d.report = (dropped) => logger.warn({ dropped_lines: dropped }, 'log lines were dropped while the log destination was not accepting writes');
}

/** Lines the logger's destination dropped so far, for the metric; always 0 for a destination that never drops. */
export function droppedLines(logger: Logger): () => number {
  const d = drops.get(destinationOf(logger));
  return d ? () => d.total : () => 0;
}

/** A child logger writes to its root's destination. */
function destinationOf(logger: Logger): object {
  return (logger as unknown as Record<symbol, object>)[pino.symbols.streamSym]!;
}
