// wxgw start | validate | certs | scan | deliveries | demo | version
import { loadPolicy } from './policy/load.js';
import { PolicyError, formatDiagnostic, type Diagnostic } from './types/policy.js';
import { describeCertificates } from './tls/describe.js';
import { shownPath } from './shown-path.js';
import cluster from 'node:cluster';
import { loadChecked, startGateway } from './main.js';
import { WorkerStartError, startPrimary, workerCount } from './cluster/primary.js';
import { runWorker } from './cluster/worker.js';
import { createLogger, redactingLogger } from './observability/logger.js';
import { compileLogRedactor } from './masking/redact.js';
import { boundedDestination, logBufferBytes } from './observability/log-destination.js';
import { ListenError } from './runtime/listeners.js';
import { runDemo } from './demo.js';
import { runScan } from './scan/command.js';
import { COMMANDS, COMMAND_USAGE, USAGE, UsageError, parseCommand, type Values } from './cli/usage.js';
import { FORMATS, validate, type Format } from './cli/validate.js';
import { version } from './cli/version.js';
import { runDeliveries } from './cli/deliveries.js';

function printDiagnostics(diagnostics: Diagnostic[]): void {
  for (const d of diagnostics) process.stderr.write(formatDiagnostic({ ...d, file: shownPath(d.file) }) + '\n');
}

/** The options of `command`; undefined after printing its --help. */
function options(command: keyof typeof COMMAND_USAGE, args: string[], opts: Parameters<typeof parseCommand>[2]): Values | undefined {
  const values = parseCommand(command, args, opts);
  if (values.help) {
    process.stdout.write(COMMAND_USAGE[command]);
    return undefined;
  }
  return values;
}

function required(command: string, value: Values[string], what: string): string {
  if (typeof value !== 'string' || value === '') throw new UsageError(command, `${what} is required`);
  return value;
}

const CONFIG = { config: { type: 'string', short: 'c' } } as const;

async function certs(file: string): Promise<number> {
  try {
    const { config } = await loadPolicy(file);
    const report = describeCertificates(config.tls);
    process.stdout.write(report.text);
    return report.ok ? 0 : 1;
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    printDiagnostics(err.diagnostics);
    return 1;
  }
}

/** server.workers > 1: a primary that reads the policy and runs the workers (cluster/primary.ts). */
async function startCluster(file: string, loaded: Awaited<ReturnType<typeof loadChecked>>): Promise<{ reload(): Promise<unknown>; shutdown(): Promise<boolean> }> {
  // The workers' lines reach stdout through this one destination, whole (cluster/primary.ts).
  const destination = boundedDestination(1, logBufferBytes(process.env.WXGW_LOG_BUFFER));
  // The primary logs no request data, only credentials could reach its lines.
  const logger = redactingLogger(createLogger({ destination }), () => compileLogRedactor([]));
  for (const w of loaded.warnings) logger.warn({ file: w.file, line: w.line, col: w.col, key: w.path }, w.message);
  return startPrimary({ file, loaded, logger, lines: destination });
}

async function start(file: string): Promise<void> {
  // A worker of a primary (server.workers > 1) takes its policy from the primary, not the file.
  if (cluster.isWorker) return runWorker();
  // A SIGHUP while starting (a config tool reloading everything) must not end the process, which
  // Node's default does: it is remembered and applied once the gateway runs, since the file may
  // have changed after it was read.
  let reload: (() => void) | undefined;
  let hupWhileStarting = false;
  process.on('SIGHUP', () => {
    if (reload) reload();
    else hupWhileStarting = true;
  });
  try {
    const loaded = await loadChecked(file);
    const gateway = workerCount(loaded.config) > 1 ? await startCluster(file, loaded) : await startGateway({ config: file, loaded });
    // Failures are logged with their FILE:LINE:COL by the gateway; the old policy keeps serving.
    reload = () => {
      gateway.reload().catch((err: unknown) => process.stderr.write(`wxgw: reload failed: ${String(err)}\n`));
    };
    if (hupWhileStarting) reload();
    const stop = (signal: string): void => {
      process.stderr.write(`wxgw: ${signal} received, draining: /readyz reports not ready, then requests in flight finish\n`);
      gateway.shutdown().then(
        // A cluster's primary says whether every worker drained cleanly.
        (clean: boolean | void) => process.exit(clean === false ? 1 : 0),
        (err: unknown) => {
          process.stderr.write(`wxgw: shutdown failed: ${String(err)}\n`);
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  } catch (err) {
    if (err instanceof PolicyError) {
      printDiagnostics(err.diagnostics);
      process.stderr.write(`wxgw: ${file}: the policy was rejected; nothing was started\n`);
      process.exit(1);
    }
    if (err instanceof ListenError || err instanceof WorkerStartError) {
      process.stderr.write(`wxgw: ${err.message}; nothing was started\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start': {
      const o = options('start', rest, CONFIG);
      if (o) await start(required('start', o.config, '--config FILE'));
      return;
    }
    case 'validate': {
      const o = options('validate', rest, { ...CONFIG, format: { type: 'string' } });
      if (!o) return;
      const format = (o.format ?? 'text') as Format;
      if (!FORMATS.includes(format)) throw new UsageError('validate', `--format ${String(o.format)}: expected one of ${FORMATS.join(', ')}`);
      process.exitCode = await validate(required('validate', o.config, '--config FILE'), format);
      return;
    }
    case 'certs': {
      const o = options('certs', rest, CONFIG);
      if (o) process.exitCode = await certs(required('certs', o.config, '--config FILE'));
      return;
    }
    case 'scan':
      process.exitCode = await runScan(rest, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      return;
    case 'deliveries':
      process.exitCode = await runDeliveries(rest, { stdout: process.stdout, stderr: process.stderr });
      return;
    case 'demo':
      if (options('demo', rest, {})) await runDemo();
      return;
    case 'version':
    case '--version':
    case '-V':
      if (rest.length > 0) throw new UsageError(command === 'version' ? 'version' : undefined, `Unexpected argument '${rest[0]}'`);
      process.stdout.write(`wxgw ${version()}\n`);
      return;
    case undefined:
      throw new UsageError(undefined, `no command given; the commands are ${COMMANDS.join(', ')}`);
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(undefined, `unknown command "${command}"; the commands are ${COMMANDS.join(', ')}`);
  }
}

/** A usage error or a failure nothing above explained: one line, no stack (set WXGW_LOG_LEVEL=debug for it). */
function report(err: unknown): void {
  if (err instanceof UsageError) {
    const who = err.command ? `wxgw ${err.command}` : 'wxgw';
    process.stderr.write(`${who}: ${err.message} (${who} --help)\n`);
    process.exit(2);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`wxgw: ${message.split('\n')[0]}\n`);
  const debug = process.env.WXGW_LOG_LEVEL === 'debug' || process.env.WXGW_LOG_LEVEL === 'trace';
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

main(process.argv.slice(2)).catch(report);
