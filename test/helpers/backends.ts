// Real backends nobody here wrote, each running a tiny app from test/backends/ that logs what it
// understood of every request: PHP's built-in server, Python's wsgiref and Debian's gunicorn (the
// same WSGI app), and Express. A test reads the log to see what the backend acted on.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { repoRoot } from './process.js';

export type BackendKind = 'wsgiref' | 'gunicorn' | 'php' | 'express';
export const BACKEND_KINDS: readonly BackendKind[] = ['wsgiref', 'gunicorn', 'php', 'express'];

/** What a backend app understood of one request, as it logged it (test/backends/README.md). */
export interface BackendReport {
  server: string;
  /** The handler its own router chose: internal, me, callback, reports, mask, api, fallback. */
  route: string;
  /** The method it acted on, after any X-HTTP-Method-Override it honours. */
  method: string;
  /** The method the server handed it. */
  raw_method: string;
  /** The path it routed on (after X-Original-URL / X-Rewrite-URL, which it honours). */
  path: string;
  request_uri: string;
  /** The identity header, read the framework's way (`HTTP_X_WX_OPENID`, `req.get(...)`). */
  openid: string | null;
  callback_verified: string | null;
  /** The client address it would act on: the first client-IP header present, else the peer. */
  client_ip: string;
  host: string | null;
  forwarded_host: string | null;
  scheme: string | null;
  /** Each header of test/backends/claims.json, as the app reads it; null when absent. */
  claims: Record<string, string | null>;
  /** Every request header, under the names the framework gives them. */
  headers: Record<string, string>;
  body: string;
}

export interface Backend {
  kind: BackendKind;
  url: string;
  port: number;
  /** Every request the app handled so far, oldest first. */
  seen(): BackendReport[];
  /** The server's own output, for failure messages. */
  output(): string;
  close(): Promise<void>;
}

const backendsDir = join(repoRoot, 'test/backends');

// Each backend runs in a process group of its own (gunicorn forks a worker), signalled as a whole.
// A test process that dies without its `after` hooks must not leave servers behind.
const running = new Set<ChildProcess>();
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // The group is gone already.
  }
}
process.once('exit', () => {
  for (const child of running) signalGroup(child, 'SIGKILL');
});

function command(kind: BackendKind, port: number): { cmd: string; args: string[] } {
  switch (kind) {
    case 'php':
      return { cmd: 'php', args: ['-S', `127.0.0.1:${port}`, '-t', backendsDir, join(backendsDir, 'index.php')] };
    case 'wsgiref':
      return { cmd: 'python3', args: [join(backendsDir, 'wsgi_app.py'), String(port)] };
    case 'gunicorn':
      return {
        cmd: 'gunicorn',
        args: ['--bind', `127.0.0.1:${port}`, '--workers', '1', '--chdir', backendsDir, '--log-level', 'warning', 'wsgi_app:app'],
      };
    case 'express':
      return { cmd: process.execPath, args: [join(backendsDir, 'express-app.mjs'), String(port)] };
  }
}

/** Resolves once a TCP connection to the port succeeds; polls, never sleeps a fixed time first. */
async function waitForListening(port: number, child: ChildProcess, output: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`backend exited before listening:\n${output()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`backend not listening on ${port} after ${timeoutMs} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startBackend(kind: BackendKind, opts: { port?: number } = {}): Promise<Backend> {
  const port = opts.port ?? (await freePort());
  const log = join(mkdtempSync(join(tmpdir(), `wxgw-backend-${kind}-`)), 'requests.jsonl');
  const { cmd, args } = command(kind, port);
  const child = spawn(cmd, args, {
    cwd: backendsDir,
    env: { ...process.env, BACKEND_LOG: log, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  running.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // gunicorn's quick shutdown is SIGINT (SIGTERM waits for its workers' graceful timeout).
    signalGroup(child, kind === 'gunicorn' ? 'SIGINT' : 'SIGTERM');
    await exited;
    signalGroup(child, 'SIGKILL');
  };
  try {
    await waitForListening(port, child, () => out);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    kind,
    url: `http://127.0.0.1:${port}`,
    port,
    seen: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as BackendReport)
        : [],
    output: () => out,
    close: stop,
  };
}
