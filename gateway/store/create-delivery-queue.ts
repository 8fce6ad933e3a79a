import type { StoreConfig } from '../types/policy.js';
import { DELIVERY_QUEUE_DEFAULTS, type DeliveryQueue } from './delivery-queue.js';
import { MemoryDeliveryQueue } from './memory-delivery-queue.js';
import { RedisDeliveryQueue } from './redis-delivery-queue.js';

/** The delivery queue in the store the policy names; never throws for a Redis that is down. */
export function createDeliveryQueue(cfg: StoreConfig): DeliveryQueue {
  const q = cfg.delivery_queue ?? DELIVERY_QUEUE_DEFAULTS;
  if (cfg.kind === 'memory') return new MemoryDeliveryQueue(q.dead_letters);
  return new RedisDeliveryQueue({ url: cfg.redis_url!, keyPrefix: cfg.key_prefix, commandTimeoutMs: cfg.command_timeout, takeoverAfterMs: q.takeover_after, deadLetterMax: q.dead_letters });
}
