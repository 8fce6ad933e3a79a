// `server.workers: 2` through the real binary: a rate limit of 100 admits exactly 100 across both
// workers (the memory store is the primary's), metrics are one view summed over them, and a
// killed worker is replaced and counted while the counts it served survive it. With the Redis
// store each worker has its own connection and the limit is as exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import type { ClientResponse } from '../helpers/https-client.js';
import { startCli } from '../helpers/process.js';
import { promtool, sample } from '../helpers/metrics-text.js';
import { startRedis } from '../helpers/redis.js';
import { get, metrics, named, policy, servedBy, workerPids } from '../helpers/workers.js';

test('a limit of 100 admits exactly 100 across two workers; metrics sum them; a killed worker is replaced, counted, and the count survives it', async () => {
  const ctx = await policyContext();
  const upstream = await named('ok');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url, { limit: 100 }));
  const gw = await startCli(file);
  try {
    const answers: ClientResponse[] = [];
    // Ten at a time, 150 in all: bounded load, both workers busy at once.
    for (let round = 0; round < 15; round++) answers.push(...(await Promise.all(Array.from({ length: 10 }, () => get(ctx)))));
    const statuses = answers.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 100, `statuses: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 50);
    const admitted = answers.filter((r) => r.status === 200).map((r) => String(r.headers['x-request-id']));
    assert.deepEqual(await servedBy(gw, admitted), [1, 2], 'both workers admitted requests');

    // One view: the sums over both workers, and promtool accepts the text.
    let text = await metrics(ctx);
    assert.equal(sample(text, 'wxgw_requests_total{route="api",method="GET",status_class="2xx"}'), 100);
    assert.equal(sample(text, 'wxgw_requests_total{route="api",method="GET",status_class="4xx"}'), 50);
    assert.equal(sample(text, 'wxgw_workers{state="serving"}'), 2);
    assert.equal(sample(text, 'wxgw_ready'), 1, 'a per-process gauge is not summed');
    assert.equal(sample(text, 'wxgw_worker_restarts_total'), 0);
    const check = await promtool(['check', 'metrics'], text);
    assert.equal(check.code, 0, check.output);
    assert.equal(check.output.trim(), '', `promtool warns:\n${check.output}`);

    // A worker killed: replaced after a short delay, counted, logged.
    const [victim] = workerPids(gw);
    const mark = gw.output().length;
    process.kill(victim!, 'SIGKILL');
    await gw.waitFor(/"signal":"SIGKILL".*worker exited unexpectedly; starting a replacement/, 15_000, mark);
    await gw.waitFor(/replacement worker serving/, 15_000, mark);
    text = await metrics(ctx);
    assert.equal(sample(text, 'wxgw_worker_restarts_total'), 1);
    assert.equal(sample(text, 'wxgw_workers{state="serving"}'), 2);
    assert.equal((await fetch(`http://127.0.0.1:${ctx.adminPort}/readyz`)).status, 200);
    // The counts live in the primary: the replacement still refuses, and so does the other worker.
    const after = await Promise.all(Array.from({ length: 4 }, () => get(ctx)));
    assert.deepEqual(after.map((r) => r.status), [429, 429, 429, 429]);
    assert.deepEqual(await servedBy(gw, after.map((r) => String(r.headers['x-request-id']))), [1, 2]);
  } finally {
    gw.kill();
    await gw.exited();
    await upstream.close();
  }
});


test('with the Redis store each worker has its own connection, and a limit of 20 still admits exactly 20 across both', async () => {
  const redis = await startRedis();
  const ctx = await policyContext();
  const upstream = await named('ok');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url, { limit: 20, redis: true }));
  const saved = process.env.REDIS_URL;
  process.env.REDIS_URL = redis.url;
  const gw = await startCli(file).finally(() => {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
  });
  try {
    assert.match(gw.output(), /"store":"redis, a connection per worker"/);
    const answers: ClientResponse[] = [];
    for (let round = 0; round < 3; round++) answers.push(...(await Promise.all(Array.from({ length: 10 }, () => get(ctx)))));
    const statuses = answers.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 20, `statuses: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 10);
    assert.deepEqual(await servedBy(gw, answers.filter((r) => r.status === 200).map((r) => String(r.headers['x-request-id']))), [1, 2]);
    assert.equal(sample(await metrics(ctx), 'wxgw_store_up{kind="redis"}'), 1);
  } finally {
    gw.kill();
    await gw.exited();
    await upstream.close();
    await redis.stop();
  }
});
