// server.workers absent is `auto`, through the real binary: one worker per core this process may
// use (at most 8), each access line naming the worker that served it; and on one core (the CPU
// affinity taskset gives, as a container limited to one CPU would) the single process, with no
// primary and no workers. A primary killed outright takes its workers with it, even when they
// have log lines buffered for the stdout that only the primary read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { repoRoot, startCli } from '../helpers/process.js';
import { get, named, workerPids } from '../helpers/workers.js';
import { waitUntil } from '../helpers/wait.js';

const policy = (ctx: PolicyContext, upstream: string): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  drain_delay: 1ms
${ctx.tlsSection}
upstreams:
  up: { url: "${upstream}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: up }
defaults: { allow: any }
`;

/** `wxgw start` under `prefix` (taskset); resolves once it listens, with its output and pid. */
async function start(prefix: string[], file: string) {
  const argv = [...prefix, process.execPath, join(repoRoot, 'bin/wxgw.js'), 'start', '--config', file];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const wake = new Set<() => void>();
  for (const s of [child.stdout, child.stderr]) s.on('data', (c: Buffer) => ((out += c.toString()), wake.forEach((w) => w())));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const lines = (): Record<string, unknown>[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    await waitUntil(() => (lines().some((l) => l.msg === 'wxgw listening') ? true : child.exitCode !== null ? assert.fail(out) : undefined), 'wxgw listening', { wake, timeoutMs: 30_000, describe: () => out });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const children = (): number[] => readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return {
    lines,
    children,
    async stop(): Promise<number | null> {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

test('absent, server.workers is one worker per core, and the access lines say which served', async () => {
  const ctx = await policyContext();
  const upstream = await named('ok');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url));
  const want = Math.min(availableParallelism(), 8);
  const gw = await start([], file);
  try {
    const listening = gw.lines().find((l) => l.msg === 'wxgw listening')!;
    if (want === 1) {
      assert.equal(listening.workers, undefined, 'one core: the single process');
      assert.deepEqual(gw.children(), []);
    } else {
      assert.equal(listening.workers, want);
      assert.equal(gw.children().length, want);
    }
    // A connection each: the primary hands them to the workers in turn.
    const answers = await Promise.all(Array.from({ length: 4 * want }, () => get(ctx)));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    const ids = new Set(answers.map((a) => String(a.headers['x-request-id'])));
    const served = await waitUntil(() => {
      const access = gw.lines().filter((l) => ids.has(l.request_id as string) && typeof l.status === 'number');
      return access.length === ids.size ? access : undefined;
    }, 'an access line per request');
    const workers = [...new Set(served.map((l) => l.worker))].sort();
    assert.deepEqual(workers, want === 1 ? [undefined] : Array.from({ length: want }, (_, i) => i + 1));
  } finally {
    assert.equal(await gw.stop(), 0);
    await upstream.close();
  }
});

test('absent, on one core (taskset -c 0): the single process, no primary, no workers', async () => {
  const ctx = await policyContext();
  const upstream = await named('ok');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url));
  const gw = await start(['taskset', '-c', '0'], file);
  try {
    const listening = gw.lines().find((l) => l.msg === 'wxgw listening')!;
    assert.equal(listening.workers, undefined, JSON.stringify(listening));
    assert.deepEqual(gw.children(), []);
    const res = await get(ctx);
    assert.equal(res.status, 200);
    const id = String(res.headers['x-request-id']);
    const line = await waitUntil(() => gw.lines().find((l) => l.request_id === id && typeof l.status === 'number'), 'the access line');
    assert.equal(line.worker, undefined, 'one process: its lines name no worker');
  } finally {
    assert.equal(await gw.stop(), 0);
    await upstream.close();
  }
});

test('the primary killed (SIGKILL) while requests keep coming: every worker exits', async () => {
  const ctx = await policyContext();
  const upstream = await named('ok');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url).replace('  drain_delay: 1ms\n', '  drain_delay: 1ms\n  workers: 2\n'));
  const gw = await startCli(file);
  const pids = workerPids(gw);
  try {
    assert.equal(pids.length, 2);
    // Requests keep coming while the primary dies, so each worker has access lines waiting in
    // its log buffer (written in 4 KB batches, or after 250 ms) at that moment.
    let answered = 0;
    let load = true;
    const loop = async (): Promise<void> => {
      while (load) await get(ctx).then(() => answered++, () => undefined);
    };
    const loops = [loop(), loop(), loop()];
    await waitUntil(() => (answered >= 12 ? true : undefined), 'requests answered by the workers');
    gw.kill();
    await gw.exited();
    load = false;
    await Promise.all(loops);
    const alive = (): number[] =>
      pids.filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
    await waitUntil(() => (alive().length === 0 ? true : undefined), 'every worker gone', { timeoutMs: 15_000, describe: () => `still running: ${alive().join(' ')}` });
  } finally {
    gw.kill();
    // A worker that failed to exit is not left running past the test.
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await upstream.close();
  }
});
