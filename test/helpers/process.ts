// The built `wxgw` binary as a child process, with its stdout and stderr gathered in one string.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface CliGateway {
  child: ChildProcessWithoutNullStreams;
  /** Everything written so far, stdout and stderr interleaved. */
  output(): string;
  /** Resolves once the output matches, polling; fails with the output after timeoutMs. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<void>;
  exited(): Promise<number | null>;
  kill(): void;
}

/** Starts `wxgw start`; returns once its output shows `ready` (by default: listening). */
export async function startCli(config: string, ready = /wxgw listening/): Promise<CliGateway> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'start', '--config', config], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const gw: CliGateway = {
    child,
    output: () => out,
    async waitFor(pattern, timeoutMs = 15_000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out.slice(from))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in the gateway's output:\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    exited: () => exit,
    kill: () => child.kill('SIGKILL'),
  };
  // A primary and one worker per core (the default) each load and build the policy before the
  // primary says it listens: on a loaded 2-core machine that can take longer than one process.
  // A gateway that never gets there is killed, not left running past the test.
  await gw.waitFor(ready, 30_000).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return gw;
}

/** Replaces a file the way editors and deploy tools do: write beside it, then rename over it. */
export function replaceFile(file: string, text: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}
