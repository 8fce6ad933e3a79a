// What each command takes, its --help text, and the one-line usage error (exit 2) for anything
// else. The commands' own work lives beside this file and in cli.ts.

import { parseArgs, type ParseArgsConfig } from 'node:util';

export const COMMANDS = ['start', 'validate', 'certs', 'scan', 'deliveries', 'demo', 'version'] as const;

export const USAGE = `usage: wxgw <command> [options]      (wxgw <command> --help for a command's options)

commands:
  start     --config FILE   run the gateway with this policy
  validate  --config FILE   check the policy and every file, secret and certificate it references
            [--format text|json]
  certs     --config FILE   show each configured certificate chain as it will be served
  scan      URL | --policy FILE
                            probe a live endpoint (or lint a policy) for the five patterns that
                            get mini-program backends banned
  deliveries list|show|replay|drop --config FILE [--route R] [ID | --all]
                            inspect, replay or drop the dead letters of delivery: async
                            callback routes (Redis store)
  demo                      generate a local CA chain, start the sample backend and run the
                            gateway with config/gateway.example.yaml (from a source checkout)
  version                   print the version (also: wxgw --version)

exit codes: 0 success, 1 the policy or a certificate was rejected (scan: findings) or the
gateway failed, 2 usage error (scan: could not scan)
`;

/** --help of the commands parsed here; `scan` has its own (gateway/scan/command.ts). */
export const COMMAND_USAGE: Record<'start' | 'validate' | 'certs' | 'demo', string> = {
  start: `usage: wxgw start --config FILE

Runs the gateway with the policy in FILE. Nothing listens until the policy and every
certificate it names have been accepted; errors are printed with FILE:LINE:COL and the exit
code is 1. SIGHUP reloads the policy (the old one keeps serving if the new one fails),
SIGTERM and SIGINT drain and stop.

options:
  -c, --config FILE   the policy file
  -h, --help          this text

environment (read at start, not policy keys):
  WXGW_LOG_LEVEL    info (default), trace, debug, warn, error, fatal or silent
  WXGW_LOG_BUFFER   most bytes of log lines waiting for stdout: 4mb (default), 512kb...

exit codes: 0 stopped cleanly, 1 the policy was rejected or the gateway failed, 2 usage error
`,
  validate: `usage: wxgw validate --config FILE [--format text|json]

Checks the policy in FILE as \`wxgw start\` would, without opening any port: the YAML, the
schema, every \${...} reference, every file it names, the certificate chains and the guards.
Every error is reported in one pass. Rules in report mode are listed.

options:
  -c, --config FILE     the policy file
      --format FORMAT   text (default; errors on stderr) or json (one document on stdout:
                        {ok, errors, warnings, report_mode})
  -h, --help            this text

exit codes: 0 the policy would start, 1 it would not, 2 usage error
`,
  certs: `usage: wxgw certs --config FILE

Shows each certificate chain the policy configures, as it will be served: subjects, issuers,
names, expiry, and whether the chain verifies against the policy's roots.

options:
  -c, --config FILE   the policy file
  -h, --help          this text

exit codes: 0 every chain verifies, 1 one does not or the policy cannot be read, 2 usage error
`,
  demo: `usage: wxgw demo

From a source checkout: generates a local CA chain under certs/, starts the bundled sample
backend and runs the gateway with config/gateway.example.yaml and the in-memory store.
WXGW_DEMO_HTTPS_PORT, WXGW_DEMO_HTTP_PORT, WXGW_DEMO_ADMIN_PORT and WXGW_DEMO_BACKEND_PORT
move it to other ports. The container image does not ship the demo.

options:
  -h, --help   this text
`,
};

/** A wrong command line: one line on stderr naming the command, exit 2. */
export class UsageError extends Error {
  constructor(
    readonly command: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Node's parseArgs messages, shortened to what the person typed and what is wrong (as `wxgw scan` does). */
function shortParseError(message: string): string {
  return message.split('\n')[0]!.replace(/\. To specify .*$/, '').replace(/\. This command does not take .*$/, '');
}

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Parses `args` for `command` (with -h, --help); unknown options, positionals or missing values are UsageErrors. */
export function parseCommand(command: string, args: string[], options: Options): Values {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(command, shortParseError((err as Error).message));
  }
}
