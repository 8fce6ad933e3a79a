// The delivery queue of a gateway with the memory store: one process, nothing survives it (the
// policy load warns). There is no other consumer to take a message over, so `hold` has nothing
// to do and a message taken stays taken until it is acked or buried.
import type { DeadLetter, DeliveryQueue, QueuedMessage, TakenMessage } from './delivery-queue.js';

export class MemoryDeliveryQueue implements DeliveryQueue {
  readonly kind = 'memory' as const;
  private seq = 0;
  /** Waiting to be taken, in queue order. */
  private readonly ready: TakenMessage[] = [];
  private readonly taken = new Map<string, TakenMessage>();
  private readonly dead = new Map<string, Map<string, DeadLetter>>();
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(private readonly deadLetterMax: number) {}

  enqueue(message: QueuedMessage): Promise<string> {
    const id = `${Date.now()}-${++this.seq}`;
    this.ready.push({ id, message });
    this.wake?.();
    return Promise.resolve(id);
  }

  async take(max: number, waitMs: number): Promise<TakenMessage[]> {
    if (this.ready.length === 0 && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
    if (this.closed) return [];
    const out = this.ready.splice(0, max);
    for (const t of out) this.taken.set(t.id, t);
    return out;
  }

  hold(): Promise<void> {
    return Promise.resolve();
  }

  ack(id: string): Promise<void> {
    this.taken.delete(id);
    return Promise.resolve();
  }

  bury(taken: TakenMessage, attempts: number, error: string): Promise<void> {
    this.taken.delete(taken.id);
    const route = this.routeDead(taken.message.route);
    route.set(taken.id, { id: taken.id, message: taken.message, attempts, error, deadAt: Date.now() });
    // Maps iterate in insertion order: the first key is the oldest.
    while (route.size > this.deadLetterMax) route.delete(route.keys().next().value!);
    return Promise.resolve();
  }

  depth(): Promise<number> {
    return Promise.resolve(this.ready.length + this.taken.size);
  }

  deadLetters(route: string, max: number): Promise<DeadLetter[]> {
    return Promise.resolve([...(this.dead.get(route)?.values() ?? [])].slice(0, max));
  }

  deadCount(route: string): Promise<number> {
    return Promise.resolve(this.dead.get(route)?.size ?? 0);
  }

  async replay(route: string, id: string): Promise<boolean> {
    const letter = this.dead.get(route)?.get(id);
    if (!letter) return false;
    this.dead.get(route)!.delete(id);
    await this.enqueue(letter.message);
    return true;
  }

  drop(route: string, id: string): Promise<boolean> {
    return Promise.resolve(this.dead.get(route)?.delete(id) ?? false);
  }

  close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    return Promise.resolve();
  }

  private routeDead(route: string): Map<string, DeadLetter> {
    let m = this.dead.get(route);
    if (!m) this.dead.set(route, (m = new Map()));
    return m;
  }
}
