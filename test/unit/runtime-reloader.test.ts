// The reloader with its policy reading and compiling replaced by controllable ones: what it swaps,
// what it refuses, that reloads run one at a time, and that a file change starts one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { accept, edit, POLICY_FILE } from '../fixtures/policy/harness.js';
import { PolicyError, type PolicyConfig } from '../../gateway/types/policy.js';
import type { Snapshot } from '../../gateway/snapshot.js';
import type { Metrics } from '../../gateway/observability/metrics.js';
import { startReloader, type Candidate, type ReloaderDeps } from '../../gateway/runtime/reloader.js';

const base = (await accept(edit({}))).config;

interface Fake {
  snapshot: Snapshot;
  disposed: boolean;
}

function fakeSnapshot(policy: PolicyConfig): Fake {
  const fake: Fake = { snapshot: undefined as unknown as Snapshot, disposed: false };
  fake.snapshot = {
    policy,
    secrets: new Map(),
    dispose: async () => {
      fake.disposed = true;
    },
  } as unknown as Snapshot;
  return fake;
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function harness(load: () => Promise<Candidate>, debounceMs = 10) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const counts: Record<string, number> = {};
  const metrics = { reloads: { labels: (r: string) => ({ inc: () => void (counts[r] = (counts[r] ?? 0) + 1) }) } } as unknown as Pick<Metrics, 'reloads'>;
  const first = fakeSnapshot(base);
  const source = { current: first.snapshot };
  const built: Fake[] = [];
  const deps: ReloaderDeps<Candidate> = {
    file: 'gw/policy.yaml',
    source,
    logger,
    metrics,
    load,
    compile: async (c) => {
      const f = fakeSnapshot(c.config);
      built.push(f);
      return f.snapshot;
    },
    debounceMs,
  };
  const reloader = startReloader(deps);
  return { reloader, source, first, built, counts, lines };
}

test('a good policy is built beside and swapped in; the previous one is released', async (t) => {
  const h = harness(async () => ({ config: base, warnings: [] }));
  t.after(() => h.reloader.close());
  const result = await h.reloader.reload();
  assert.equal(result.ok, true);
  assert.equal(h.source.current, h.built[0]!.snapshot);
  assert.equal(h.first.disposed, true);
  assert.equal(h.built[0]!.disposed, false);
  assert.deepEqual(h.counts, { success: 1 });
  assert.ok(h.lines.some((l) => l['msg'] === 'policy reloaded' && l['since'] === 'request'));
});

test('an invalid policy changes nothing and is logged with its line', async (t) => {
  const h = harness(async () => {
    throw new PolicyError([{ severity: 'error', file: POLICY_FILE, line: 13, col: 5, path: 'routes[0].upstream', message: 'no such upstream' }]);
  });
  t.after(() => h.reloader.close());
  const result = await h.reloader.reload();
  assert.deepEqual(result.ok ? undefined : [result.why, result.message], ['invalid', 'gw/policy.yaml: the policy was rejected; the previous policy stays in force']);
  assert.equal(h.source.current, h.first.snapshot);
  assert.equal(h.first.disposed, false);
  assert.deepEqual(h.counts, { invalid: 1 });
  assert.ok(h.lines.some((l) => l['line'] === 13 && l['key'] === 'routes[0].upstream'));
});

test('a listener change is refused before anything is built', async (t) => {
  const moved = (await accept(edit({ 3: '  https: { listen: "0.0.0.0:9443" }' }))).config;
  const h = harness(async () => ({ config: moved, warnings: [] }));
  t.after(() => h.reloader.close());
  const result = await h.reloader.reload();
  assert.equal(result.ok ? undefined : result.why, 'restart');
  assert.equal(h.built.length, 0);
  assert.equal(h.source.current, h.first.snapshot);
  assert.deepEqual(h.counts, { restart_required: 1 });
});

test('reloads run one at a time; those asked for meanwhile fold into one more', { timeout: 10_000 }, async (t) => {
  const gates: Array<ReturnType<typeof deferred<Candidate>>> = [];
  let running = 0;
  let most = 0;
  const h = harness(() => {
    running++;
    most = Math.max(most, running);
    const gate = deferred<Candidate>();
    gates.push(gate);
    return gate.promise.finally(() => running--);
  });
  t.after(() => h.reloader.close());
  const first = h.reloader.reload();
  const second = h.reloader.reload();
  const third = h.reloader.reload();
  assert.equal(second, third, 'both wait for the same next reload');
  assert.equal(gates.length, 1);
  gates[0]!.resolve({ config: base, warnings: [] });
  await first;
  // The folded reload starts once the first has finished.
  while (gates.length < 2) await new Promise((r) => setImmediate(r));
  gates[1]!.resolve({ config: base, warnings: [] });
  await second;
  assert.equal(gates.length, 2);
  assert.equal(most, 1);
  assert.equal(h.source.current, h.built[1]!.snapshot);
  assert.deepEqual(h.counts, { success: 2 });
});

test('a reload that fails unexpectedly is reported to its caller, and the one queued behind it still runs', async (t) => {
  let calls = 0;
  const gate = deferred<void>();
  const h = harness(async () => {
    calls++;
    if (calls === 1) {
      await gate.promise;
      throw new Error('disk gone');
    }
    return { config: base, warnings: [] };
  });
  t.after(() => h.reloader.close());
  const failing = h.reloader.reload();
  const queued = h.reloader.reload();
  gate.resolve();
  await assert.rejects(failing, /disk gone/);
  assert.equal((await queued).ok, true);
  assert.equal(h.source.current, h.built[0]!.snapshot);
});

test('a change to a watched file starts a reload', { timeout: 10_000 }, async (t) => {
  const loaded = deferred<void>();
  const h = harness(async () => {
    loaded.resolve();
    return { config: base, warnings: [] };
  });
  t.after(() => h.reloader.close());
  writeFileSync(POLICY_FILE, edit({}));
  await loaded.promise;
  while (!h.lines.some((l) => l['msg'] === 'policy reloaded')) await new Promise((r) => setTimeout(r, 5));
  assert.ok(h.lines.some((l) => l['msg'] === 'policy reloaded' && l['since'] === 'file change'));
});
