// The ioredis client for each way of running Redis: one server (a URL), a Redis Cluster (seed
// nodes), or a master and replicas watched by Sentinel. Every mode gets the same promise the
// store relies on: a command never waits for a connection (it fails at once), and the client
// reconnects by itself, forever, to whichever node now serves its keys.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** host:port of a node or sentinel, as the policy writes it. */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** Credentials and TLS for the data nodes of a cluster or of a Sentinel-managed set. */
interface NodeAuth {
  readonly username?: string;
  /** A secret: never logged. */
  readonly password?: string;
  readonly tls?: boolean;
}

export type RedisTarget =
  | { readonly url: string }
  | { readonly cluster: NodeAuth & { readonly nodes: readonly RedisNode[] } }
  | {
      readonly sentinel: NodeAuth & {
        readonly hosts: readonly RedisNode[];
        /** The master's name as the sentinels know it (`sentinel monitor <name> ...`). */
        readonly name: string;
        /** The sentinels' own password (their requirepass), when they have one. A secret. */
        readonly sentinelPassword?: string;
      };
    };

export type RedisClient = Redis | Cluster;

/** Reconnect delays: 100 ms doubling to a cap of 2 s, forever. */
function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
}

/**
 * A master demoted to replica (a Sentinel failover it missed while partitioned) answers writes
 * with READONLY: reconnect, so that Sentinel names the new master. The command itself fails.
 */
const reconnectOnReadonly = (err: Error): boolean => err.message.startsWith('READONLY');

/** Options of one connection: shared by the single server, each Sentinel-managed connection and each cluster node. */
function connectionOptions(commandTimeoutMs: number): RedisOptions {
  return {
    // A request must never wait for a connection: without one, commands fail at once.
    enableOfflineQueue: false,
    // Commands in flight when the connection drops fail instead of being retried later.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // No commandTimeout: ioredis would time a command from a timer that a busy event loop runs
    // late, before reading the answer waiting in the socket. The store times it (command-budget.ts).
    // A connection (TCP, TLS, AUTH) may take longer than one command; requests never wait for it.
    connectTimeout: Math.max(1000, commandTimeoutMs),
    retryStrategy: reconnectDelay,
    reconnectOnError: reconnectOnReadonly,
  };
}

export function createRedisClient(target: RedisTarget, commandTimeoutMs: number): RedisClient {
  const base = connectionOptions(commandTimeoutMs);
  if ('url' in target) return new Redis(target.url, base);
  if ('sentinel' in target) {
    const s = target.sentinel;
    return new Redis({
      ...base,
      sentinels: s.hosts.map(({ host, port }) => ({ host, port })),
      name: s.name,
      ...(s.username !== undefined && { username: s.username }),
      ...(s.password !== undefined && { password: s.password }),
      ...(s.sentinelPassword !== undefined && { sentinelPassword: s.sentinelPassword }),
      ...(s.tls === true && { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true }),
      // A sentinel that hangs is skipped for the next one within a connection's own timeout.
      sentinelCommandTimeout: base.connectTimeout!,
      // Every reconnect asks the sentinels for the master again. Not ioredis's failoverDetector:
      // its subscriptions to the sentinels report their errors on stderr, outside the log.
    });
  }
  const c = target.cluster;
  const options: ClusterOptions = {
    // The cluster as a whole follows the same rule: no queue while it has no slot map.
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelay,
    // A node that went away is retried after a fresh slot map (CLUSTER SLOTS) shows who took
    // over; each retry counts against the redirections below, so a command that cannot be
    // served gives up after about maxRedirections * retryDelayOnFailover (the store gives up
    // at command_timeout anyway, and takes back what a late success counted).
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    slotsRefreshTimeout: Math.max(1000, commandTimeoutMs),
    // Every key is read where it is written: replicas lag, and a limit read there would admit more.
    scaleReads: 'master',
    redisOptions: {
      // Per node: the pool reconnects nodes through fresh slot maps, not by itself.
      connectTimeout: base.connectTimeout!,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      reconnectOnError: reconnectOnReadonly,
      ...(c.username !== undefined && { username: c.username }),
      ...(c.password !== undefined && { password: c.password }),
      ...(c.tls === true && { tls: {} }),
    },
  };
  const cluster = new Cluster(
    c.nodes.map(({ host, port }) => ({ host, port })),
    options,
  );
  // A node connects on its first command, and with no offline queue the commands that come while
  // it connects fail (and wait out a retry): connect each node as soon as the slot map names it,
  // at start and after a failover, before a request needs it.
  cluster.on('+node', (node: Redis) => {
    if (node.status === 'wait') node.connect().catch(() => undefined);
  });
  return cluster;
}

/** Where the store's Redis is, for logs: never a password. */
export function describeTarget(target: RedisTarget): string {
  const list = (nodes: readonly RedisNode[]): string => nodes.map((n) => `${n.host}:${n.port}`).join(',');
  if ('cluster' in target) return `cluster ${list(target.cluster.nodes)}`;
  if ('sentinel' in target) return `sentinel master ${target.sentinel.name} via ${list(target.sentinel.hosts)}`;
  try {
    const u = new URL(target.url);
    return `${u.hostname}:${u.port === '' ? '6379' : u.port}`;
  } catch {
    return '(unparsable redis url)';
  }
}
