import type { Logger } from '../observability/logger.js';
import type { StoreConfig } from '../types/policy.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

/** Never throws for a Redis that is down: the Redis store connects and reconnects by itself. */
export function createStore(cfg: StoreConfig, logger: Logger): Store {
  if (cfg.kind === 'memory') return new MemoryStore();
  if (cfg.redis_url === undefined) throw new Error('store.kind is redis but store.redis_url is missing');
  return new RedisStore({
    url: cfg.redis_url,
    keyPrefix: cfg.key_prefix,
    commandTimeoutMs: cfg.command_timeout,
    logger,
  });
}
