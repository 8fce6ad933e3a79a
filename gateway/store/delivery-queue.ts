// The queue of verified callbacks on routes with `delivery: async` (docs/policy.md): what the
// gateway answered WeChat for but has not yet delivered to the upstream. One interface, two
// implementations: Redis Streams (durable, shared by every instance on one Redis) and this
// process's memory (lost at exit). One contract test suite runs against both.
//
// A message is taken by one consumer and stays its own until acked (delivered), buried (a dead
// letter) or, in Redis, taken over by another consumer after the holder went silent for
// `takeoverAfterMs` (it died mid-delivery). A live holder confirms what it holds (`hold`) well
// within that time, so nothing it is still working on is taken from it.
import type { DeliveryQueueConfig } from '../types/policy.js';

export const DELIVERY_QUEUE_DEFAULTS: Readonly<DeliveryQueueConfig> = Object.freeze({ concurrency: 16, takeover_after: 60_000, dead_letters: 10_000 });

/** One verified callback, as the upstream is to get it. */
export interface QueuedMessage {
  /** The route it arrived on; its upstream and retry settings are read from the policy in force. */
  readonly route: string;
  /** The idempotency key (MsgId, an event's hash, the Pay notification id), sent as Idempotency-Key. */
  readonly key: string;
  /** Messages with the same order key are delivered one at a time, in queue order (a hash of the user). */
  readonly order: string;
  /** The upstream path and query. */
  readonly path: string;
  /** The headers the upstream gets (content type, the verification headers). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** Epoch milliseconds it was queued. */
  readonly queuedAt: number;
}

export interface TakenMessage {
  /** The queue's id of this entry (a stream id in Redis). */
  readonly id: string;
  readonly message: QueuedMessage;
}

export interface DeadLetter {
  readonly id: string;
  readonly message: QueuedMessage;
  readonly attempts: number;
  /** Why the last attempt failed: an HTTP status or a transport reason, never the answer's body. */
  readonly error: string;
  /** Epoch milliseconds. */
  readonly deadAt: number;
}

export interface DeliveryQueue {
  readonly kind: 'memory' | 'redis';
  /** Returns the entry's id. Rejects when the queue cannot take it (Redis down): the caller refuses the callback so WeChat retries it. */
  enqueue(message: QueuedMessage): Promise<string>;
  /**
   * Up to `max` messages for this consumer: first those another consumer held past the takeover
   * time, then new ones in queue order. Waits up to `waitMs` when there are none.
   */
  take(max: number, waitMs: number): Promise<TakenMessage[]>;
  /** Confirms this consumer still works on these, so they are not taken over. */
  hold(ids: readonly string[]): Promise<void>;
  /** Delivered: the entry is gone. */
  ack(id: string): Promise<void>;
  /** Moves a taken message to its route's dead letters (bounded: the oldest go). */
  bury(taken: TakenMessage, attempts: number, error: string): Promise<void>;
  /** Messages queued and not yet delivered or buried, held ones included. */
  depth(): Promise<number>;
  /** The route's dead letters, oldest first, at most `max`. */
  deadLetters(route: string, max: number): Promise<DeadLetter[]>;
  deadCount(route: string): Promise<number>;
  /** Puts a dead letter back at the end of the queue; false when there is no such dead letter. */
  replay(route: string, id: string): Promise<boolean>;
  drop(route: string, id: string): Promise<boolean>;
  /** Stops waiting in take(); what this consumer holds stays queued. */
  close(): Promise<void>;
}
