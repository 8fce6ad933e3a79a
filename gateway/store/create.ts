import type { Logger } from '../observability/logger.js';
import type { StoreConfig } from '../types/policy.js';
import { MemoryStore } from './memory-store.js';
import type { RedisTarget } from './redis-client.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

/** Never throws for a Redis that is down: the Redis store connects and reconnects by itself. */
export function createStore(cfg: StoreConfig, logger: Logger): Store {
  if (cfg.kind === 'memory') return new MemoryStore();
  return new RedisStore({ ...redisTarget(cfg), keyPrefix: cfg.key_prefix, commandTimeoutMs: cfg.command_timeout, logger });
}

/** The one way the (checked) policy names the store's Redis: one server, a cluster, or sentinels. */
function redisTarget(cfg: StoreConfig): RedisTarget {
  if (cfg.redis_url !== undefined) return { url: cfg.redis_url };
  if (cfg.cluster !== undefined) {
    const { nodes, username, password, tls } = cfg.cluster;
    return { cluster: { nodes, tls, ...(username !== undefined && { username }), ...(password !== undefined && { password }) } };
  }
  if (cfg.sentinels !== undefined) {
    const { hosts, name, username, password, sentinel_password, tls } = cfg.sentinels;
    return {
      sentinel: {
        hosts,
        name,
        tls,
        ...(username !== undefined && { username }),
        ...(password !== undefined && { password }),
        ...(sentinel_password !== undefined && { sentinelPassword: sentinel_password }),
      },
    };
  }
  throw new Error('store.kind is redis but names no redis_url, cluster or sentinels');
}
