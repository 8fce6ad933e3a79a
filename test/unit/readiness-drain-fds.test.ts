// /readyz's two newer checks: a shutdown in progress, and file descriptors near the soft limit
// (with the figures), each read at every call; and the descriptor figures as /proc gives them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Snapshot } from '../../gateway/snapshot.js';
import { fdUsage, readiness, type FdUsage } from '../../gateway/runtime/readiness.js';

const source = { current: { certificates: [] } as unknown as Snapshot };

test('draining is named at once, before any other check, and read at each call', () => {
  const drain = { draining: false };
  const r = readiness(source, [], Date.now, { drain, fds: () => undefined });
  assert.deepEqual(r.failing(), []);
  drain.draining = true;
  const failing = r.failing();
  assert.equal(failing.length, 1);
  assert.match(failing[0]!, /^draining/);
});

test('descriptors: over 90% of the soft limit is not ready, with the figures; at 90% or unknown it is ready', () => {
  let use: FdUsage | undefined = { open: 922, limit: 1024 };
  const r = readiness(source, [], Date.now, { fds: () => use });
  assert.deepEqual(r.failing(), ['file descriptors near the limit: 922 of 1024 in use (over 90%)']);
  use = { open: 900, limit: 1000 };
  assert.deepEqual(r.failing(), []);
  use = undefined;
  assert.deepEqual(r.failing(), []);
  // At the limit itself /proc cannot be opened to count: that is the least ready of all.
  use = { exhausted: 'EMFILE' };
  assert.deepEqual(r.failing(), ['file descriptors exhausted: /proc/self/fd cannot be read (EMFILE)']);
});

test('fdUsage reads this process: the soft limit the shell reports, and each open file counted', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  const before = fdUsage();
  assert.ok(before && 'open' in before);
  // A child inherits the limits: its `ulimit -Sn` is ours.
  assert.equal(String(before.limit), spawnSync('sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).stdout.trim());
  const files = Array.from({ length: 8 }, () => openSync(process.execPath, 'r'));
  try {
    assert.deepEqual(fdUsage(), { open: before.open + 8, limit: before.limit });
  } finally {
    for (const fd of files) closeSync(fd);
  }
  assert.deepEqual(fdUsage(), before);
});
