// wxgw start | validate | certs | scan | demo
import { parseArgs } from 'node:util';
import { loadPolicy } from './policy/load.js';
import { reportModeRules } from './policy/report-mode.js';
import { PolicyError, formatDiagnostic, type Diagnostic } from './types/policy.js';
import { loadCertificates } from './tls/load.js';
import { describeCertificates } from './tls/describe.js';
import { shownPath } from './shown-path.js';
import { compileCheck, startGateway } from './main.js';
import { ListenError } from './runtime/listeners.js';
import { runDemo } from './demo.js';
import { runScan } from './scan/command.js';

const USAGE = `usage: wxgw <command> [--config FILE]

commands:
  start     --config FILE   run the gateway with this policy
  validate  --config FILE   check the policy and every file and secret it references;
                            exit 0 when all is well, 1 otherwise
  certs     --config FILE   show each configured certificate chain as it will be served
  scan      URL | --policy FILE
                            probe a live endpoint (or lint a policy) for the five patterns that
                            get mini-program backends banned; exit 0 none found, 1 findings,
                            2 could not scan (wxgw scan --help for the options)
  demo                      generate a local CA chain, start the sample backend and run the
                            gateway with config/gateway.example.yaml
`;

function fail(message: string): never {
  process.stderr.write(`wxgw: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function configArg(args: string[]): string {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  if (!values.config) fail('--config FILE is required');
  return values.config;
}

function printDiagnostics(diagnostics: Diagnostic[]): void {
  for (const d of diagnostics) process.stderr.write(formatDiagnostic({ ...d, file: shownPath(d.file) }) + '\n');
}

/** Rules in report mode are the easiest to forget once a rollout is done: listed on every validate. */
function printReportMode(config: Parameters<typeof reportModeRules>[0]): void {
  const entries = reportModeRules(config);
  if (entries.length === 0) return;
  process.stdout.write(`report mode: ${entries.length} route(s) have rules that are counted, not enforced:\n`);
  for (const e of entries) process.stdout.write(`  ${shownPath(e.pos.file)}:${e.pos.line}  ${e.route}: ${e.rules.join(', ')}\n`);
}

async function validate(file: string): Promise<number> {
  try {
    const { config, warnings } = await loadPolicy(file);
    const { certificates, diagnostics } = loadCertificates(config.tls);
    printDiagnostics([...warnings, ...diagnostics]);
    const errors = diagnostics.filter((d) => d.severity === 'error').length;
    if (errors > 0) {
      process.stderr.write(`${file}: ${errors} error${errors === 1 ? '' : 's'} in the certificates; the policy would not start\n`);
      return 1;
    }
    await compileCheck({ config, certificates, warnings: [] });
    process.stdout.write(
      `${file}: policy OK: ${config.routes.length} route(s), ${config.upstreams.size} upstream(s), ` +
        `${certificates.length} certificate chain(s) verified\n`,
    );
    printReportMode(config);
    return 0;
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    printDiagnostics(err.diagnostics);
    const errors = err.diagnostics.filter((d) => d.severity === 'error').length;
    process.stderr.write(`${file}: ${errors} error${errors === 1 ? '' : 's'}; the policy would not start\n`);
    return 1;
  }
}

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

async function start(file: string): Promise<void> {
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
    const gateway = await startGateway({ config: file });
    // Failures are logged with their FILE:LINE:COL by the gateway; the old policy keeps serving.
    reload = () => {
      gateway.reload().catch((err: unknown) => process.stderr.write(`wxgw: reload failed: ${String(err)}\n`));
    };
    if (hupWhileStarting) reload();
    const stop = (signal: string): void => {
      process.stderr.write(`wxgw: ${signal} received, draining: /readyz reports not ready, then requests in flight finish\n`);
      gateway.shutdown().then(
        () => process.exit(0),
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
    if (err instanceof ListenError) {
      process.stderr.write(`wxgw: ${err.message}; nothing was started\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(configArg(rest));
    case 'validate':
      process.exitCode = await validate(configArg(rest));
      return;
    case 'certs':
      process.exitCode = await certs(configArg(rest));
      return;
    case 'scan':
      process.exitCode = await runScan(rest, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      return;
    case 'demo':
      return runDemo();
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`wxgw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
