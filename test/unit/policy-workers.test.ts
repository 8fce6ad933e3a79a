// server.workers: a number from 1 to 64 or `auto`, a warning for more workers than cores, how
// many processes each value runs, and that changing it needs a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';
import { listenerChange } from '../../gateway/runtime/reloader.js';
import { AUTO_WORKERS_MAX, workerCount } from '../../gateway/cluster/primary.js';

const limits = '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m }';
const withWorkers = (value: string): string => edit({ 8: `${limits}\n  workers: ${value}` });

test('server.workers takes a number from 1 to 64 or auto; absent, auto', async () => {
  const absent = (await accept(edit({}))).config;
  assert.equal(absent.server.workers, undefined);
  // Absent is auto: one per core, and one process on a single core.
  assert.equal(workerCount(absent, 1), 1);
  assert.equal(workerCount(absent, 2), 2);
  assert.equal(workerCount(absent, 96), AUTO_WORKERS_MAX);
  assert.equal(workerCount(absent), Math.min(availableParallelism(), AUTO_WORKERS_MAX));
  assert.equal((await accept(withWorkers('1'))).config.server.workers, 1);
  assert.equal((await accept(withWorkers('auto'))).config.server.workers, 'auto');
  const cases: [string, string][] = [
    ['0', 'must be >= 1'],
    ['65', 'must be <= 64'],
    ['1.5', 'found the number `1.5`'],
    ['two', 'must be a number of processes from 1 to 64, or `auto` (one per core, at most 8); found the string `two`'],
    ['"2"', 'found the string `2`'],
  ];
  for (const [bad, message] of cases) expectDiagnostics(await reject(withWorkers(bad)), [{ line: 9, col: 12, path: 'server.workers', message: [message] }]);
});

test('auto runs one worker per core, at most AUTO_WORKERS_MAX; a number runs that many', async () => {
  const auto = (await accept(withWorkers('auto'))).config;
  assert.equal(workerCount(auto, 1), 1);
  assert.equal(workerCount(auto, 4), 4);
  assert.equal(workerCount(auto, 96), AUTO_WORKERS_MAX);
  assert.equal(workerCount((await accept(withWorkers('2'))).config, 96), 2);
});

test('more workers than this machine has cores is a warning naming both', async () => {
  const many = availableParallelism() + 1;
  const { warnings } = await accept(withWorkers(String(many)));
  expectDiagnostics(warnings, [{ line: 9, col: 12, path: 'server.workers', message: [`${many} workers on a machine with ${many - 1} cores`, '`auto` runs one per core'], severity: 'warning' }]);
  assert.deepEqual((await accept(withWorkers(String(many - 1)))).warnings, []);
});

test('changing server.workers needs a restart', async () => {
  const base = (await accept(edit({}))).config;
  assert.equal(listenerChange(base, (await accept(withWorkers('2'))).config), 'server.workers changed from auto to 2; restart wxgw to apply it');
  assert.equal(listenerChange(base, (await accept(withWorkers('1'))).config), 'server.workers changed from auto to 1; restart wxgw to apply it');
  assert.equal(listenerChange(base, (await accept(withWorkers('auto'))).config), undefined, 'the default spelled out is no change');
});
