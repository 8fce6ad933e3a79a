// Exactly-once delivery of signed callbacks (message pushes, Pay notifications) over WeChat's
// retries, on the store's claim/release/put/get, so instances sharing a Redis share it too.
//
// A callback has a request key (one signed request: its timestamp, nonce and signature) and,
// when its message says who it is, a message key (MsgId, the Pay notification id): a retry
// WeChat re-signs with a new nonce has a new request key but the same message key. Each key is:
//
//   absent            never seen, given back, or past its lifetime
//   p|<holder>        pending: a delivery is in flight (lives the route's upstream time budget)
//   d|<answer>        delivered: the upstream answered; what the client got (lives the retry window)
//   u|                the signature was used by a request of another mode (never delivered on)
//
// A callback claims both keys as pending in one round trip. It goes upstream only when it holds
// both; the claims are committed with the answer once the upstream answered below 500, and given
// back when it did not (5xx, error, timeout) or a later guard refused, so WeChat's retry is
// delivered. A callback that finds a key delivered is answered with what that delivery got; one
// that finds it pending waits for it (in-process at once, across instances by polling) up to
// WAIT_MS, then takes it over if it was given back, or answers 503 callback_in_flight.
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../store/store.js';

/** What a delivered callback's client got, replayed byte for byte to its retries. */
export interface StoredAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

export interface CallbackKeys {
  /** One signed request (requestKey()). */
  readonly request: string;
  /** The message it carries (messageKey()), when the message names itself. */
  readonly message?: string;
  /**
   * Keys of requests another mode would accept with the same signature (a safe-mode push's
   * `signature`, good for a plain-mode push too): marked used, so that a replay in the other
   * mode is refused, but never checked, so that distinct pushes sharing them are all delivered.
   */
  readonly covers?: readonly string[];
}

/** How a claimed delivery ends; the first call wins, later ones do nothing. */
export interface CallbackDelivery {
  /** The upstream answered (below 500): `answer` is what the client got, kept for the retry window. */
  commit(answer: StoredAnswer): void;
  /** Not delivered: the claims go back, and WeChat's retry is delivered. */
  release(): void;
}

export type Claim =
  | { kind: 'owned'; delivery: CallbackDelivery }
  /** Answered before: by this very request (`request`), or by another carrying the same message. */
  | { kind: 'replay'; by: 'request' | 'message'; answer: StoredAnswer }
  | { kind: 'in_flight' }
  /** The key holds something no delivery wrote (a signature used in the other mode). */
  | { kind: 'used' };

export interface LedgerTimes {
  /** Milliseconds a delivered callback's answer is kept: the retry window, 2 × max_skew. */
  readonly window: number;
  /** Milliseconds a pending claim lives: past the upstream time budget, so only a crashed holder's expires. */
  readonly pendingTtl: number;
  /** Milliseconds a retry waits for a delivery in flight before answering 503 (default WAIT_MS). */
  readonly waitMs?: number;
}

/** Under WeChat's 5 s: the retry's own answer still reaches WeChat. */
export const WAIT_MS = 4000;
/** Answers above this are kept as their status and content type with an empty body. */
export const ANSWER_LIMIT = 64 * 1024;
const POLL_MS = [20, 50, 100, 200, 250];
const CLAIM_ATTEMPTS = 5;
const GIVE_BACK_RETRIES = 5;
const GIVE_BACK_RETRY_MS = 1000;

const PENDING = 'p|';
const DONE = 'd|';
const USED = 'u|';

/** sha256 of the parts, so any spelling of them makes a short key of one alphabet. */
function digest(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\n'), 'utf8').digest('base64url');
}

/** The store key of one signed request under `prefix` (per app). */
export function requestKey(prefix: string, parts: readonly string[]): string {
  return `${prefix}req:${digest(parts)}`;
}

/** The store key of one message under `prefix` (per app). */
export function messageKey(prefix: string, id: string): string {
  return `${prefix}msg:${digest([id])}`;
}

function encode(answer: StoredAnswer): string {
  const kept = answer.body.length <= ANSWER_LIMIT;
  return DONE + JSON.stringify({ s: answer.status, t: kept ? answer.contentType : 'text/plain; charset=utf-8', b: kept ? answer.body.toString('base64') : '' });
}

function decode(value: string): StoredAnswer | undefined {
  try {
    const v = JSON.parse(value.slice(DONE.length)) as { s?: unknown; t?: unknown; b?: unknown };
    if (typeof v.s !== 'number' || typeof v.t !== 'string' || typeof v.b !== 'string') return undefined;
    return { status: v.s, contentType: v.t, body: Buffer.from(v.b, 'base64') };
  } catch {
    return undefined;
  }
}

interface Settling {
  readonly settled: Promise<string | undefined>;
  readonly settle: (value: string | undefined) => void;
}

/**
 * Deliveries in flight in this process, by store and key: a retry that reaches the same instance
 * learns the outcome the moment it is known, without polling the store.
 */
const inFlight = new WeakMap<Store, Map<string, Settling>>();

function localOf(store: Store): Map<string, Settling> {
  let map = inFlight.get(store);
  if (!map) {
    map = new Map();
    inFlight.set(store, map);
  }
  return map;
}

/** In the background and best effort: a write the store cannot take now is tried a few more times, a second apart. */
function persist(write: () => Promise<unknown>, attempt = 0): void {
  write().catch(() => {
    if (attempt < GIVE_BACK_RETRIES) setTimeout(() => persist(write, attempt + 1), GIVE_BACK_RETRY_MS).unref();
  });
}

type Seen = { kind: 'done'; value: string } | { kind: 'gone' } | { kind: 'pending' } | { kind: 'used' };

export class CallbackLedger {
  private readonly local: Map<string, Settling>;
  private readonly waitMs: number;

  constructor(
    private readonly store: Store,
    private readonly times: LedgerTimes,
  ) {
    this.local = localOf(store);
    this.waitMs = times.waitMs ?? WAIT_MS;
  }

  /**
   * Claims a callback's keys. `answered`: the gateway answers it itself (URL verification), so
   * the request key is recorded delivered at once with that answer.
   */
  async acquire(keys: CallbackKeys, answered?: StoredAnswer): Promise<Claim> {
    const deadline = performance.now() + this.waitMs;
    const holder = answered ? encode(answered) : PENDING + randomUUID();
    const ttl = answered ? this.times.window : this.times.pendingTtl;
    let request = false;
    let message = keys.message === undefined;
    let covered = keys.covers === undefined || keys.covers.length === 0;
    for (let attempt = 1; ; attempt++) {
      const wanted = [...(request ? [] : [keys.request]), ...(message ? [] : [keys.message!])];
      const marks = covered ? [] : keys.covers!;
      const results = await Promise.allSettled([...wanted.map((k) => this.store.claim(k, ttl, holder)), ...marks.map((k) => this.store.put(k, USED, this.times.window))]);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) {
        // Redis may still record a claim it did not answer in time: each is given back after it
        // (compare and delete: a key this request does not hold is left alone).
        this.giveBack(keys.message === undefined ? [keys.request] : [keys.request, keys.message], holder);
        throw failed.reason;
      }
      covered = true;
      wanted.forEach((k, i) => {
        if ((results[i] as PromiseFulfilledResult<boolean>).value !== true) return;
        if (k === keys.request) request = true;
        else message = true;
      });
      if (request && message) return { kind: 'owned', delivery: answered ? ANSWERED : this.delivery(keys, holder) };
      // This very request is in flight or done: it owns the message too.
      if (!request && message && keys.message !== undefined) {
        this.giveBack([keys.message], holder);
        message = false;
      }
      const blocking = request ? keys.message! : keys.request;
      const seen = await this.settled(blocking, deadline);
      if (seen.kind === 'done') {
        const answer = decode(seen.value);
        if (!answer) return this.abandon(request ? [keys.request] : [], holder, { kind: 'used' });
        // This request is answered as the message was: a replay of it gets the same.
        if (request) persist(() => this.store.put(keys.request, seen.value, this.times.window));
        return { kind: 'replay', by: request ? 'message' : 'request', answer };
      }
      // Given back or expired: claimed again, a few times at most (others may be taking it too).
      if (seen.kind === 'gone' && attempt < CLAIM_ATTEMPTS) continue;
      return this.abandon(request ? [keys.request] : [], holder, seen.kind === 'used' ? { kind: 'used' } : { kind: 'in_flight' });
    }
  }

  private abandon(held: string[], holder: string, claim: Claim): Claim {
    this.giveBack(held, holder);
    return claim;
  }

  private giveBack(keys: readonly string[], holder: string): void {
    for (const k of keys) persist(() => this.store.release(k, holder));
  }

  /** A pending key's outcome, waited for until `deadline`. */
  private async settled(key: string, deadline: number): Promise<Seen> {
    for (let poll = 0; ; poll++) {
      const mine = this.local.get(key);
      if (mine) {
        const left = deadline - performance.now();
        const value = left <= 0 ? mine : await Promise.race([mine.settled, sleep(left, mine, { ref: false })]);
        if (value === mine) return { kind: 'pending' };
        return value === undefined ? { kind: 'gone' } : { kind: 'done', value: value as string };
      }
      const value = await this.store.get(key);
      if (value === undefined) return { kind: 'gone' };
      if (value.startsWith(DONE)) return { kind: 'done', value };
      if (!value.startsWith(PENDING)) return { kind: 'used' };
      const left = deadline - performance.now();
      if (left <= 0) return { kind: 'pending' };
      await sleep(Math.min(left, POLL_MS[Math.min(poll, POLL_MS.length - 1)]!), undefined, { ref: false });
    }
  }

  private delivery(keys: CallbackKeys, holder: string): CallbackDelivery {
    const held = keys.message === undefined ? [keys.request] : [keys.request, keys.message];
    const settlings = held.map((k) => {
      let settle!: (value: string | undefined) => void;
      const settled = new Promise<string | undefined>((resolve) => (settle = resolve));
      const s = { settled, settle };
      this.local.set(k, s);
      return [k, s] as const;
    });
    let ended = false;
    // A delivery nobody ended (a bug on the way to the upstream) stops holding this process's
    // retries when its claim expires in the store.
    const expiry = setTimeout(() => end(undefined), this.times.pendingTtl);
    expiry.unref();
    const end = (value: string | undefined): void => {
      ended = true;
      clearTimeout(expiry);
      for (const [k, s] of settlings) {
        if (this.local.get(k) === s) this.local.delete(k);
        s.settle(value);
      }
    };
    return {
      commit: (answer) => {
        if (ended) return;
        const value = encode(answer);
        for (const k of held) persist(() => this.store.put(k, value, this.times.window));
        end(value);
      },
      release: () => {
        if (ended) return;
        this.giveBack(held, holder);
        end(undefined);
      },
    };
  }
}

/** The gateway's own answer was recorded with the claim: nothing is left to end. */
const ANSWERED: CallbackDelivery = Object.freeze({ commit: () => undefined, release: () => undefined });

/** A route's upstream time budget when none is given: the default queue (5 s), connect (5 s) and answer (30 s) timeouts. */
export const DEFAULT_UPSTREAM_BUDGET = 40_000;

/**
 * The ledger's times for a callback route: answers kept for 2 × max_skew (a request older than
 * that is stale anyway), pending claims for twice the time its upstream request may take
 * (`upstreamBudget`: queue, connect and answer timeouts) and a margin for the steps around it.
 */
export function ledgerTimes(maxSkew: number, upstreamBudget = DEFAULT_UPSTREAM_BUDGET): LedgerTimes {
  return { window: 2 * maxSkew, pendingTtl: 2 * upstreamBudget + 5000 };
}
