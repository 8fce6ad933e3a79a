// `server.workers: 2` through the real binary: a rate limit of 100 admits exactly 100 across both
// workers (the memory store is the primary's), metrics are one view, a reload is put in force on
// every worker or on none (a worker that dies while the others have built the new policy leaves
// all of them, and its replacement, on the old one), SIGTERM drains both, and a killed worker is
// replaced and counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { replaceFile, startCli, type CliGateway } from '../helpers/process.js';
import { promtool, sample } from '../helpers/metrics-text.js';
import { waitUntil } from '../helpers/wait.js';

const policy = (ctx: PolicyContext, upstream: string, opts: { limit?: number; shutdown?: string } = {}): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  drain_delay: 1ms
  shutdown_timeout: ${opts.shutdown ?? '10s'}
  workers: 2
${ctx.tlsSection}
upstreams:
  up: { url: "${upstream}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: up
${opts.limit === undefined ? '' : `    rate_limit: { key: ip, limit: ${opts.limit}, window: 1h }\n`}defaults: { allow: any }
`;

/** The gateway's JSON log lines (the primary's and every worker's) written after `from`. */
function lines(gw: CliGateway, from = 0): Record<string, unknown>[] {
  return gw
    .output()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The workers whose access lines answered these request ids, once every line is written. */
async function servedBy(gw: CliGateway, ids: readonly string[]): Promise<unknown[]> {
  const want = new Set(ids);
  const found = await waitUntil(
    () => {
      const access = lines(gw).filter((l) => typeof l.status === 'number' && want.has(l.request_id as string));
      return access.length >= want.size ? access : undefined;
    },
    `access lines of ${want.size} requests`,
    { describe: gw.output },
  );
  return [...new Set(found.map((l) => l.worker))].sort();
}

/** The worker processes, in the order they were started. */
function workerPids(gw: CliGateway): number[] {
  const pid = gw.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

async function metrics(ctx: PolicyContext): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${ctx.adminPort}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Each request on a connection of its own: the primary hands connections to the workers in turn. */
function get(ctx: PolicyContext, path = '/api/x'): Promise<ClientResponse> {
  return httpsRequest(ctx.httpsPort, readFileSync(ctx.chain.root), { path });
}

async function named(name: string): Promise<TestUpstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
}

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

test('a reload is put in force on every worker or on none: a worker lost mid-reload leaves all on the old policy, a good one switches all', async () => {
  const ctx = await policyContext();
  const a = await named('A');
  const b = await named('B');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, a.url));
  // The primary says at debug level when a worker has built a reload's policy.
  const level = process.env.WXGW_LOG_LEVEL;
  process.env.WXGW_LOG_LEVEL = 'debug';
  const gw = await startCli(file).finally(() => {
    if (level === undefined) delete process.env.WXGW_LOG_LEVEL;
    else process.env.WXGW_LOG_LEVEL = level;
  });
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
    replaceFile(file, policy(ctx, a.url).replace('upstream: up', 'upstream: nowhere'));
    await gw.waitFor(/the policy was rejected; the previous policy stays in force/, 15_000, mark);
    assert.deepEqual(await probe(), { texts: Array(6).fill('A'), workers: [1, 2] });

    // A valid policy, but one worker stops answering and dies after the other built it.
    const [, second] = workerPids(gw);
    process.kill(second!, 'SIGSTOP');
    mark = gw.output().length;
    replaceFile(file, policy(ctx, b.url));
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
