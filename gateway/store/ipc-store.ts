// The memory store shared by a cluster's workers: the primary process holds the one MemoryStore,
// and each worker's store forwards every call to it over the cluster's IPC channel, so a rate
// limit or a one-time claim is decided in one place and stays exact however many workers serve.
//
//   ipcStore(port)            -> Store   (in a worker; port: the worker's `process`)
//   serveStore(store, port)   -> detach  (in the primary, once per worker)
//
// Calls are forwarded by method name, not by a list: a method added to Store is carried without
// an edit here. Store's methods must all return promises (an answer crosses processes);
// `NotForwardable` below fails the type-check, naming the member, for one that does not.
import { GatewayError } from '../errors.js';
import { StoreUnavailableError, type Store } from './store.js';

/** The members every Store answers locally; everything else is an async method. */
type Local = 'kind' | 'connected' | 'close' | InProcess;
/** Members only a store in this process can have (a synchronous answer): a worker's store has none. */
type InProcess = 'hitNow';
const IN_PROCESS: ReadonlySet<string> = new Set<InProcess>(['hitNow']);

/** Store's forwarded members that do not return a promise: must be `never`. */
type NotForwardable = { [K in Exclude<keyof Store, Local>]: Store[K] extends (...args: never[]) => Promise<unknown> ? never : K }[Exclude<keyof Store, Local>];
const everyMemberForwardable: [NotForwardable] extends [never] ? true : { member_that_cannot_cross_processes: NotForwardable } = true;
void everyMemberForwardable;

type Method = Exclude<keyof Store, Local>;

/** One end of a process's IPC channel: a cluster worker's `process`, or a `Worker` in the primary. */
export interface IpcPort {
  send(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  isConnected?(): boolean;
  connected?: boolean;
}

interface Call {
  readonly id: number;
  readonly method: string;
  readonly args: unknown[];
}

interface Answer {
  readonly id: number;
  readonly value?: unknown;
  /** The error's name (its class), reason (a GatewayError's) and message. */
  readonly error?: { name: string; message: string; reason?: string };
}

/**
 * The calls (answers) of one turn of the event loop travel in one message: under load a worker
 * makes many in the same turn, and one message costs much the same as one call.
 */
interface Calls {
  readonly wxgw: 'store';
  readonly calls: Call[];
}

interface Answers {
  readonly wxgw: 'store-answer';
  readonly answers: Answer[];
}

const isCalls = (m: unknown): m is Calls => typeof m === 'object' && m !== null && (m as Calls).wxgw === 'store';
const isAnswers = (m: unknown): m is Answers => typeof m === 'object' && m !== null && (m as Answers).wxgw === 'store-answer';

const connected = (port: IpcPort): boolean => port.isConnected?.() ?? port.connected ?? true;

/** Collects what is sent during one turn of the event loop and sends it as one message. */
function batcher<T>(send: (items: T[]) => void): (item: T) => void {
  let items: T[] | undefined;
  return (item) => {
    if (items) return void items.push(item);
    items = [item];
    setImmediate(() => {
      const out = items!;
      items = undefined;
      send(out);
    });
  };
}

/** The error as the caller's code expects it: a StoreUnavailableError stays one (on_unavailable reads it). */
function revive(e: NonNullable<Answer['error']>): Error {
  if (e.name === 'StoreUnavailableError') return new StoreUnavailableError(e.message);
  if (e.reason !== undefined) return new GatewayError(e.reason as ConstructorParameters<typeof GatewayError>[0], e.message);
  return e.name === 'RangeError' ? new RangeError(e.message) : new Error(e.message);
}

/** Call ids are unique in the process, so stores sharing one channel never take each other's answers. */
let next = 0;

/** A worker's view of the primary's store. Until the primary answers nothing is counted here. */
export function ipcStore(port: IpcPort, kind: Store['kind'] = 'memory'): Store {
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  const gone = (): StoreUnavailableError => new StoreUnavailableError('the primary process, which holds the memory store, is gone');
  port.on('message', (m) => {
    if (!isAnswers(m)) return;
    for (const a of m.answers) {
      const p = pending.get(a.id);
      if (!p) continue;
      pending.delete(a.id);
      if (a.error) p.reject(revive(a.error));
      else p.resolve(a.value);
    }
  });
  const failAll = (): void => {
    for (const p of pending.values()) p.reject(gone());
    pending.clear();
  };
  port.on('disconnect', failAll);
  const send = batcher<Call>((calls) => {
    // Gone between the call and its turn's end: the calls already wait in `pending`.
    if (!connected(port)) return failAll();
    port.send({ wxgw: 'store', calls } satisfies Calls);
  });
  const call = (method: string, args: unknown[]): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (!connected(port)) return reject(gone());
      const id = next++;
      pending.set(id, { resolve, reject });
      send({ id, method, args });
    });
  const local: Pick<Store, Local> = {
    kind,
    get connected() {
      return connected(port);
    },
    // The primary's store outlives every worker; a worker closing only stops asking it.
    close: async () => undefined,
  };
  return new Proxy(local as Store, {
    get(target, name, receiver) {
      // `then` stays undefined, or awaiting the store itself would call the primary.
      if (typeof name !== 'string' || name in target || name === 'then' || IN_PROCESS.has(name)) return Reflect.get(target, name, receiver) as unknown;
      return (...args: unknown[]) => call(name, args);
    },
  });
}

/** Answers one worker's calls on `store`; returns the function that stops listening. */
export function serveStore(store: Store, port: IpcPort): () => void {
  const reply = batcher<Answer>((answers) => {
    if (connected(port)) port.send({ wxgw: 'store-answer', answers } satisfies Answers);
  });
  const one = (c: Call): void => {
    const fn = (store as unknown as Record<string, unknown>)[c.method];
    if (c.method === 'close' || c.method === 'kind' || c.method === 'connected' || IN_PROCESS.has(c.method) || typeof fn !== 'function') {
      reply({ id: c.id, error: { name: 'Error', message: `the store has no method ${c.method}` } });
      return;
    }
    // A method the Store type names is forwarded as it is; `Method` keeps the cast honest.
    (fn as (...a: unknown[]) => Promise<unknown>).apply(store, c.args as Parameters<Store[Method]>).then(
      (value) => reply({ id: c.id, value }),
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        reply({ id: c.id, error: { name: e.name, message: e.message, ...(e instanceof GatewayError && { reason: e.reason }) } });
      },
    );
  };
  const onMessage = (m: unknown): void => {
    if (isCalls(m)) for (const c of m.calls) one(c);
  };
  port.on('message', onMessage);
  return () => port.off('message', onMessage);
}
