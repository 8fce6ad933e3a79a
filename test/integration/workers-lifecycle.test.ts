// `server.workers: 2` through the real binary, the lifecycle: a reload is put in force on every
// worker or on none (a worker that dies while the other has built the new policy leaves both, and
// its replacement, on the old one), and SIGTERM drains both workers before wxgw exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import type { ClientResponse } from '../helpers/https-client.js';
import { startUpstream } from '../helpers/upstream.js';
import { replaceFile, startCli } from '../helpers/process.js';
import { sample } from '../helpers/metrics-text.js';
import { waitUntil } from '../helpers/wait.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { get, metrics, named, policy, servedBy, workerPids } from '../helpers/workers.js';

test('a reload is put in force on every worker or on none: a worker lost mid-reload leaves all on the old policy, a good one switches all', async () => {
  const ctx = await policyContext();
  const a = await named('A');
  const b = await named('B');
  const file = join(ctx.dir, 'gateway.yaml');
  const hook = await startReceiver();
  const v1 = policy(ctx, a.url, { alerts: true });
  writeFileSync(file, v1);
  // The primary says at debug level when a worker has built a reload's policy.
  const saved = { level: process.env.WXGW_LOG_LEVEL, hook: process.env.ALERT_WEBHOOK };
  process.env.WXGW_LOG_LEVEL = 'debug';
  process.env.ALERT_WEBHOOK = hook.url;
  const gw = await startCli(file).finally(() => {
    for (const [name, value] of [['WXGW_LOG_LEVEL', saved.level], ['ALERT_WEBHOOK', saved.hook]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  const reloadAlerts = (): string[] => hook.received.filter((r) => r.json.rule === 'reload').map((r) => String(r.json.state));
  /** Six answers on six connections: the text says which policy served, the log which worker. */
  const probe = async (): Promise<{ texts: string[]; workers: unknown[] }> => {
    const answers: ClientResponse[] = [];
    for (let i = 0; i < 6; i++) answers.push(await get(ctx));
    return { texts: answers.map((r) => r.text), workers: await servedBy(gw, answers.map((r) => String(r.headers['x-request-id']))) };
  };
  try {
    assert.deepEqual(await probe(), { texts: Array(6).fill('A'), workers: [1, 2] });

    // Refused by the primary's check: no worker is asked.
    let mark = gw.output().length;
    replaceFile(file, v1.replace('upstream: up', 'upstream: nowhere'));
    await gw.waitFor(/the policy was rejected; the previous policy stays in force/, 15_000, mark);
    assert.deepEqual(await probe(), { texts: Array(6).fill('A'), workers: [1, 2] });
    // One alert for the instance, from the worker that reports reloads, not one per worker.
    await hook.waitFor(1);

    // A valid policy, but one worker stops answering and dies after the other built it.
    const [, second] = workerPids(gw);
    process.kill(second!, 'SIGSTOP');
    mark = gw.output().length;
    replaceFile(file, policy(ctx, b.url, { alerts: true }));
    await gw.waitFor(/worker built the new policy; waiting for the others/, 15_000, mark);
    process.kill(second!, 'SIGKILL');
    await gw.waitFor(/policy reload refused by worker \d: exited; every worker keeps the previous policy/, 15_000, mark);
    await gw.waitFor(/replacement worker serving/, 15_000, mark);
    assert.deepEqual(await probe(), { texts: Array(6).fill('A'), workers: [1, 2] }, 'the survivor and the replacement both serve the old policy');

    // The same file again, with every worker answering: all switch.
    mark = gw.output().length;
    gw.child.kill('SIGHUP');
    await gw.waitFor(/"workers":2.*"msg":"policy reloaded on every worker"/, 15_000, mark);
    assert.deepEqual(await probe(), { texts: Array(6).fill('B'), workers: [1, 2] });
    await waitUntil(() => (reloadAlerts().includes('resolved') ? true : undefined), 'the resolved reload alert');
    assert.deepEqual(reloadAlerts(), ['firing', 'resolved'], 'the second failure fell in the cool-down; nothing came twice');

    const text = await metrics(ctx);
    assert.equal(sample(text, 'wxgw_reloads_total{result="invalid"}'), 2);
    assert.equal(sample(text, 'wxgw_reloads_total{result="success"}'), 1);
    assert.equal(sample(text, 'wxgw_worker_restarts_total'), 1);
    const hashes = text.split('\n').filter((l) => l.startsWith('wxgw_policy_info{'));
    assert.equal(hashes.length, 1, `one policy in force on every worker:\n${hashes.join('\n')}`);
    assert.match(hashes[0]!, / 1$/);
  } finally {
    gw.kill();
    await gw.exited();
    await a.close();
    await b.close();
    await hook.close();
  }
});

test('SIGTERM drains both workers: requests in flight on each finish with 200, then wxgw exits 0', async () => {
  const ctx = await policyContext();
  const held: (() => void)[] = [];
  const upstream = await startUpstream((_req, res) => {
    held.push(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('done');
    });
  });
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url));
  const gw = await startCli(file);
  try {
    const inFlight = Array.from({ length: 4 }, () => get(ctx));
    await waitUntil(() => (held.length === 4 ? true : undefined), 'four requests at the upstream');
    const mark = gw.output().length;
    gw.child.kill('SIGTERM');
    await gw.waitFor(/"worker":1,.*no longer accepting connections; waiting for requests in flight/, 15_000, mark);
    await gw.waitFor(/"worker":2,.*no longer accepting connections; waiting for requests in flight/, 15_000, mark);
    for (const answer of held) answer();
    const answers = await Promise.all(inFlight);
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 200]);
    assert.deepEqual(await servedBy(gw, answers.map((r) => String(r.headers['x-request-id']))), [1, 2], 'both workers had requests in flight');
    assert.equal(await gw.exited(), 0, gw.output());
    assert.doesNotMatch(gw.output(), /still in flight|exited unexpectedly/);
  } finally {
    gw.kill();
    await upstream.close();
  }
});
