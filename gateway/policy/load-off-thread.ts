// loadPolicy in a worker thread, for reloads: parsing, schema and semantic checks of a large
// policy take a second or more of CPU, which on the main thread would be that long without an answer to any
// request. Same result, same diagnostics; when no worker can run, the same work runs here.
import { Worker } from 'node:worker_threads';
import { loadPolicy, type LoadOptions, type LoadedPolicy } from './load.js';
import type { WorkerAnswer, WorkerInput } from './load-worker.js';
import { unpack } from './packed.js';
import { PolicyError } from '../types/policy.js';

/** The worker beside this module: load-worker.js in dist/, load-worker.ts under tsx (whose loader workers inherit). */
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './load-worker.ts' : './load-worker.js', import.meta.url);

/** The part of the gateway's logger this needs (pino's signature). */
export interface FallbackLog {
  warn(fields: { err: Error }, message: string): void;
}

export interface OffThreadOptions extends LoadOptions {
  /** Told why the policy was validated on this thread after all (no worker could run, or hand it back). */
  logger?: FallbackLog;
  /** The worker's module; the one beside this file by default. */
  entry?: URL;
}

function ask(entry: URL, input: WorkerInput): Promise<WorkerAnswer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(entry, { workerData: input });
    worker.once('message', (answer: WorkerAnswer) => {
      resolve(answer);
      void worker.terminate();
    });
    worker.once('error', reject);
    // After an answer this rejects a settled promise, which changes nothing.
    worker.once('exit', (code) => reject(new Error(`the policy worker exited (code ${code}) without an answer`)));
  });
}

/** As loadPolicy: resolves with the policy or throws PolicyError, an unreadable file included. */
export async function loadPolicyOffThread(file: string, opts: OffThreadOptions = {}): Promise<LoadedPolicy> {
  const env = { ...(opts.env ?? process.env) };
  const previous = opts.previous && { previous: opts.previous };
  const inThread = (err: Error): Promise<LoadedPolicy> => {
    opts.logger?.warn({ err }, 'policy worker unavailable; validating on the main thread, requests wait meanwhile');
    return loadPolicy(file, { env, ...previous });
  };
  let answer: WorkerAnswer;
  try {
    answer = await ask(opts.entry ?? ENTRY, { file, env, ...previous });
  } catch (err) {
    return inThread(err instanceof Error ? err : new Error(String(err)));
  }
  switch (answer.kind) {
    case 'loaded':
      return unpack(answer.packed);
    case 'rejected':
      throw new PolicyError(answer.diagnostics);
    case 'uncarriable':
      return inThread(new Error(`the policy worker cannot hand over ${answer.message}`));
    case 'failed': {
      const err = new Error(answer.message);
      if (answer.stack) err.stack = answer.stack;
      throw err;
    }
  }
}
