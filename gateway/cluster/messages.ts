// What a cluster's primary and its workers say to each other over the IPC channel (v8
// serialization: Maps, Uint8Arrays and Dates cross as they are). Every message carries `wxgw`;
// the store's calls (store/ipc-store.ts) share the channel with their own kinds.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ReloadResult } from '../main.js';
import type { Diagnostic } from '../types/policy.js';
import type { CarriedPolicy } from './carry.js';

export type ToWorker =
  | { wxgw: 'start'; file: string; policy: CarriedPolicy }
  /** Build a snapshot of `policy` beside the one in force and answer `prepared`, or `reloaded` with ok false. */
  | {
      wxgw: 'prepare';
      id: number;
      policy: CarriedPolicy;
      /** How long ago the file change behind this reload was first seen; absent for SIGHUP. Each worker's log line says it as one process would. */
      changedMsAgo?: number;
    }
  /** Every worker prepared (commit), or one did not (the prepared snapshot is dropped). */
  | { wxgw: 'decide'; id: number; commit: boolean }
  | { wxgw: 'metrics'; id: number }
  | { wxgw: 'readiness'; id: number }
  /** How a reload ended, for the alert rules of the one worker that reports reloads. */
  | { wxgw: 'reload-result'; result: ReloadResult }
  | { wxgw: 'shutdown' };

export type ToPrimary =
  /** The worker listens for messages: it can take its policy. */
  | { wxgw: 'hello' }
  | { wxgw: 'listening' }
  /** The worker could not start: a policy error (diagnostics) or a listener that could not bind. */
  | { wxgw: 'failed'; message: string; diagnostics?: Diagnostic[] }
  | { wxgw: 'prepared'; id: number }
  /** The end of a reload in this worker: swapped (ok), refused before preparing, or dropped. */
  | { wxgw: 'reloaded'; id: number; ok: boolean; message?: string; diagnostics?: Diagnostic[] }
  | { wxgw: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { wxgw: 'readiness'; id: number; failing: string[]; warnings: string[] };

export const isMessage = (m: unknown): m is { wxgw: string } => typeof m === 'object' && m !== null && typeof (m as { wxgw?: unknown }).wxgw === 'string';
