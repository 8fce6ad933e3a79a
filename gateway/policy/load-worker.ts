// Worker-thread entry: validates one policy file away from the event loop that serves traffic
// and posts the answer once; load-off-thread.ts starts it and reads the answer.
import { parentPort, workerData } from 'node:worker_threads';
import { loadPolicy, type LoadOptions } from './load.js';
import { Uncarriable, pack, type PackedPolicy } from './packed.js';
import { PolicyError, type Diagnostic } from '../types/policy.js';

export interface WorkerInput {
  file: string;
  env: Record<string, string | undefined>;
  previous?: LoadOptions['previous'];
}

export type WorkerAnswer =
  | { kind: 'loaded'; packed: PackedPolicy }
  | { kind: 'rejected'; diagnostics: Diagnostic[] }
  /** Validation threw something else: a bug, reported as the in-thread path would throw it. */
  | { kind: 'failed'; message: string; stack: string | undefined }
  /** The config holds what a worker cannot hand over; the caller validates in its own thread. */
  | { kind: 'uncarriable'; message: string };

async function answer({ file, env, previous }: WorkerInput): Promise<WorkerAnswer> {
  try {
    return { kind: 'loaded', packed: pack(await loadPolicy(file, { env, ...(previous && { previous }) })) };
  } catch (err) {
    if (err instanceof PolicyError) return { kind: 'rejected', diagnostics: err.diagnostics };
    if (err instanceof Uncarriable) return { kind: 'uncarriable', message: err.message };
    return { kind: 'failed', message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined };
  }
}

parentPort!.postMessage(await answer(workerData as WorkerInput));
