// Throwaway Redis topologies on free ports: a 3-master Redis Cluster with one replica each, and a
// master with a replica watched by three sentinels. Real redis-server processes, killed with
// SIGKILL to fail over; every wait is for a state the servers report, never a fixed sleep.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { eventually } from './wait.js';

const run = promisify(execFile);

/**
 * Every node and sentinel requires this password (and uses it towards the others), so the
 * tests go through the store's credentials; redis-cli reads it from REDISCLI_AUTH.
 */
export const TOPOLOGY_PASSWORD = 'pw-topology-7Kq-never-logged';
const cliEnv = { ...process.env, REDISCLI_AUTH: TOPOLOGY_PASSWORD };

/** One redis-server (or sentinel) process. */
interface Proc {
  readonly port: number;
  readonly child: ChildProcess;
  output(): string;
}

/** Runs redis-cli against a port; its reply as text (errors are replies too). */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-p', String(port), '--no-raw', ...args], { timeout: 5000, env: cliEnv });
    return stdout.trim();
  } catch (err) {
    const e = err as { code?: string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('redis-cli is not installed (needed by the cluster and sentinel tests)');
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || String(err);
  }
}

async function redisCliRaw(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), '--raw', ...args], { timeout: 5000, env: cliEnv }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return stdout.trim();
}

function launch(args: string[]): Proc {
  const port = Number(args[args.indexOf('--port') + 1]);
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.once('error', () => undefined);
  return { port, child, output: () => output };
}

function alive(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

function kill(p: Proc, signal: NodeJS.Signals): Promise<void> {
  if (!alive(p)) return Promise.resolve();
  return new Promise((resolve) => {
    p.child.once('exit', () => resolve());
    p.child.kill(signal);
  });
}

async function waitForPing(p: Proc): Promise<void> {
  await eventually(
    async () => {
      if (!alive(p)) throw new Error(`redis-server on ${p.port} exited:\n${p.output()}`);
      return (await redisCli(p.port, 'PING')) === 'PONG' ? true : undefined;
    },
    `redis on port ${p.port} to answer PING`,
    { describe: p.output },
  );
}

/** Redis's own server settings for a test: nothing persisted, only loopback. */
const BASE = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', TOPOLOGY_PASSWORD, '--masterauth', TOPOLOGY_PASSWORD];

export interface TestCluster {
  /** host:port of every node, the seeds a client is given. */
  readonly seeds: readonly string[];
  /** Ports of the nodes alive now. */
  alivePorts(): number[];
  /** Ports of the masters alive now. */
  masterPorts(): Promise<number[]>;
  /** The port of the master that serves `key` now (the key as Redis sees it, hash tag included). */
  masterOf(key: string): Promise<number>;
  /** SIGKILL one node: a crash, as the gateway sees one. */
  kill(port: number): Promise<void>;
  /**
   * A planned failover (CLUSTER FAILOVER on a replica of the master on `masterPort`): the master
   * stops writes until its replica has them all, then they swap roles. Resolves with the new
   * master's port once every node agrees.
   */
  handOver(masterPort: number): Promise<number>;
  /** Until a replica has taken over every slot the dead node served, and every live node says ok. */
  waitForFailover(deadPort: number): Promise<void>;
  stop(): Promise<void>;
}

/** 3 masters + 3 replicas; a node is declared failed after `nodeTimeoutMs` without an answer. */
export async function startCluster(opts: { nodeTimeoutMs?: number } = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-cluster-'));
  const procs: Proc[] = [];
  const killAll = (): void => {
    for (const p of procs) p.child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      // The cluster bus port is chosen too: port + 10000 (Redis's default) may be anything.
      const bus = await freePort();
      procs.push(
        launch([
          '--port', String(port),
          ...BASE,
          '--dir', dir,
          '--cluster-enabled', 'yes',
          '--cluster-port', String(bus),
          '--cluster-config-file', join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1000),
          // A replica takes over however long its link was down: a test kills masters under load.
          '--cluster-replica-validity-factor', '0',
        ]),
      );
    }
    await Promise.all(procs.map(waitForPing));
    const seeds = procs.map((p) => `127.0.0.1:${p.port}`);
    const created = await redisCli(procs[0]!.port, '--cluster', 'create', ...seeds, '--cluster-replicas', '1', '--cluster-yes');
    if (!created.includes('[OK] All 16384 slots covered')) throw new Error(`redis-cli --cluster create failed:\n${created}`);
    await waitForState(procs, 6);
    // Every replica in sync with its master, so that a failover has something to take over.
    await eventually(
      async () => {
        for (const p of procs) {
          const info = await redisCliRaw(p.port, 'INFO', 'replication');
          if (info.includes('role:slave') && !info.includes('master_link_status:up')) return undefined;
        }
        return true;
      },
      'every replica in sync',
    );

    const live = (): Proc[] => procs.filter(alive);
    return {
      seeds,
      alivePorts: () => live().map((p) => p.port),
      masterPorts: async () => liveMasters(await redisCliRaw(live()[0]!.port, 'CLUSTER', 'NODES')),
      async masterOf(key) {
        const slot = Number(await redisCliRaw(live()[0]!.port, 'CLUSTER', 'KEYSLOT', key));
        const port = ownerOf(await redisCliRaw(live()[0]!.port, 'CLUSTER', 'NODES'), slot);
        if (port === undefined) throw new Error(`no master serves slot ${slot}`);
        return port;
      },
      async kill(port) {
        const p = procs.find((x) => x.port === port);
        if (p !== undefined) await kill(p, 'SIGKILL');
      },
      async handOver(masterPort) {
        const nodes = await redisCliRaw(masterPort, 'CLUSTER', 'NODES');
        const masterId = nodes.split('\n').find((l) => l.includes('myself'))!.split(' ')[0]!;
        const replicaPort = Number(/:(\d+)@/.exec(nodes.split('\n').find((l) => l.split(' ')[3] === masterId)!.split(' ')[1]!)![1]);
        const answer = await redisCli(replicaPort, 'CLUSTER', 'FAILOVER');
        if (answer !== 'OK') throw new Error(`CLUSTER FAILOVER: ${answer}`);
        await eventually(
          async () => {
            for (const p of live()) {
              const masters = liveMasters(await redisCliRaw(p.port, 'CLUSTER', 'NODES'));
              if (!masters.includes(replicaPort) || masters.includes(masterPort)) return undefined;
            }
            return true;
          },
          `the replica on ${replicaPort} to take over from ${masterPort}`,
          { timeoutMs: 20_000 },
        );
        return replicaPort;
      },
      async waitForFailover(deadPort) {
        await eventually(
          async () => {
            for (const p of live()) {
              if (!(await redisCliRaw(p.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
              const masters = liveMasters(await redisCliRaw(p.port, 'CLUSTER', 'NODES'));
              if (masters.includes(deadPort) || masters.length < 3) return undefined;
            }
            return true;
          },
          `a replica to take over from the master on ${deadPort}`,
          { timeoutMs: 20_000 },
        );
      },
      async stop() {
        await Promise.all(procs.map((p) => kill(p, 'SIGTERM')));
        process.off('exit', killAll);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    killAll();
    process.off('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Until every node in `procs` says cluster_state:ok and knows `known` nodes that have not failed. */
async function waitForState(procs: readonly Proc[], known: number): Promise<void> {
  await eventually(
    async () => {
      for (const p of procs) {
        if (!(await redisCliRaw(p.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
        const nodes = (await redisCliRaw(p.port, 'CLUSTER', 'NODES')).split('\n').filter((l) => l.trim() !== '' && !/\bfail\b/.test(l));
        if (nodes.length < known) return undefined;
      }
      return true;
    },
    'cluster_state:ok on every node',
    { timeoutMs: 20_000 },
  );
}

/** Ports of the masters not flagged as failing (fail or fail?) in CLUSTER NODES output. */
function liveMasters(nodes: string): number[] {
  return nodes
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter((parts) => parts.length >= 8 && parts[2]!.split(',').includes('master') && !parts[2]!.includes('fail'))
    .map((parts) => Number(/:(\d+)@/.exec(parts[1]!)?.[1]));
}

/**
 * The port of the master serving `slot` in CLUSTER NODES output. Lines: id host:port@bus flags master ping pong epoch state slot-ranges...
 */
function ownerOf(nodes: string, slot: number): number | undefined {
  for (const line of nodes.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8 || !parts[2]!.split(',').includes('master') || parts[2]!.includes('fail')) continue;
    const port = Number(/:(\d+)@/.exec(parts[1]!)?.[1]);
    for (const range of parts.slice(8)) {
      if (range.startsWith('[')) continue;
      const [lo, hi] = range.split('-').map(Number) as [number, number | undefined];
      if (slot >= lo && slot <= (hi ?? lo)) return port;
    }
  }
  return undefined;
}

export interface TestSentinels {
  /** host:port of each sentinel. */
  readonly hosts: readonly string[];
  readonly name: string;
  /** The port of the master the sentinels name now. */
  masterPort(): Promise<number>;
  /** SIGKILL the master. */
  killMaster(): Promise<number>;
  /** Until the sentinels name a master other than `oldPort`, and it says it is one. */
  waitForFailover(oldPort: number): Promise<number>;
  stop(): Promise<void>;
}

/** A master, one replica, three sentinels (quorum 2) declaring it down after `downAfterMs`. */
export async function startSentinels(opts: { downAfterMs?: number } = {}): Promise<TestSentinels> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-sentinel-'));
  const procs: Proc[] = [];
  const killAll = (): void => {
    for (const p of procs) p.child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const name = 'wxgwmaster';
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    const master = launch(['--port', String(masterPort), ...BASE, '--dir', dir]);
    procs.push(master);
    await waitForPing(master);
    const replica = launch(['--port', String(replicaPort), ...BASE, '--dir', dir, '--replicaof', '127.0.0.1', String(masterPort)]);
    procs.push(replica);
    await waitForPing(replica);
    await eventually(async () => ((await redisCliRaw(replicaPort, 'INFO', 'replication')).includes('master_link_status:up') ? true : undefined), 'the replica in sync');
    const sentinels: Proc[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its own config file: each gets one of its own.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `requirepass ${TOPOLOGY_PASSWORD}`,
          `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
          `sentinel auth-pass ${name} ${TOPOLOGY_PASSWORD}`,
          `sentinel sentinel-pass ${TOPOLOGY_PASSWORD}`,
          `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      const child = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
      child.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
      child.once('error', () => undefined);
      const p: Proc = { port, child, output: () => output };
      sentinels.push(p);
      procs.push(p);
    }
    await Promise.all(sentinels.map(waitForPing));
    // Every sentinel knows the replica and the other two sentinels: a failover can be agreed.
    await eventually(
      async () => {
        for (const s of sentinels) {
          const master = await redisCliRaw(s.port, 'SENTINEL', 'MASTER', name);
          const field = (k: string): number => Number(new RegExp(`^${k}\\n(\\d+)$`, 'm').exec(master)?.[1] ?? 0);
          if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return undefined;
        }
        return true;
      },
      'the sentinels to know the replica and each other',
      { timeoutMs: 20_000 },
    );
    const masterPortNow = async (): Promise<number> => {
      for (const s of sentinels.filter(alive)) {
        const addr = (await redisCliRaw(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)).split('\n');
        if (addr.length === 2) return Number(addr[1]);
      }
      throw new Error('no sentinel names a master');
    };
    return {
      hosts: sentinels.map((s) => `127.0.0.1:${s.port}`),
      name,
      masterPort: masterPortNow,
      async killMaster() {
        const port = await masterPortNow();
        await kill(procs.find((p) => p.port === port)!, 'SIGKILL');
        return port;
      },
      async waitForFailover(oldPort) {
        return eventually(
          async () => {
            for (const s of sentinels) {
              const addr = (await redisCliRaw(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)).split('\n');
              if (addr.length !== 2 || Number(addr[1]) === oldPort) return undefined;
            }
            const port = await masterPortNow();
            return (await redisCliRaw(port, 'ROLE')).startsWith('master') ? port : undefined;
          },
          `the sentinels to promote a replica of the master on ${oldPort}`,
          { timeoutMs: 25_000 },
        );
      },
      async stop() {
        await Promise.all(procs.map((p) => kill(p, 'SIGTERM')));
        process.off('exit', killAll);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    killAll();
    process.off('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
