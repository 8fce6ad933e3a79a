// The real binary with a reader that stops reading its stdout: the gateway keeps answering, holds
// at most its log buffer (WXGW_LOG_BUFFER) beyond what the pipe itself holds, drops and counts
// the rest, and says how many it dropped once the reader reads again. A SIGTERM while nobody
// reads still ends the process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { startCli } from '../helpers/process.js';

const REPORT = 'log lines were dropped while the log destination was not accepting writes';
const BUFFER = 64 * 1024;
const REQUESTS = 600;
/** Each access line carries its path, so every request puts about this much into the log. */
const PAD = 'a'.repeat(8000);

/** What a Unix socket pair (Node's stdio pipe) holds on its own: the sender's buffer. */
function socketBufferBytes(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/wmem_default', 'utf8').trim());
  } catch {
    return 212_992;
  }
}

function droppedTotal(metrics: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith('wxgw_log_lines_dropped_total '));
  assert.ok(line, 'the metric is exported');
  return Number(line.split(' ')[1]);
}

const policy = (ctx: PolicyContext, upstream: string): string => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream}" }
routes:
  - { name: fill, match: { path_prefix: /fill/ }, upstream: legacy }
defaults: { allow: any }
`;

/** `total` requests with long paths over 8 connections; every status. */
async function fill(agent: Agent, port: number, total: number): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < total) {
        const i = next++;
        const res = await request(`https://127.0.0.1:${port}/fill/${i}/${PAD}`, { dispatcher: agent, headers: { host: 'localhost' } });
        await res.body.dump();
        statuses.push(res.statusCode);
      }
    }),
  );
  return statuses;
}

test('stdout not read: lines past the buffer are dropped and counted, requests all answered, one line reports the loss', async () => {
  const ctx = await policyContext();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
    res.end('{}');
  });
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, upstream.url));
  // The child inherits it: the bound is the process's, set before the policy is read.
  process.env.WXGW_LOG_BUFFER = '64kb';
  const gw = await startCli(file);
  delete process.env.WXGW_LOG_BUFFER;
  const agent = new Agent({ connect: { ca: readFileSync(ctx.chain.root), servername: 'localhost' }, connections: 8 });
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${ctx.adminPort}/metrics`)).text();
  try {
    // The reader stops: the pipe fills, then every write of the gateway's waits.
    gw.child.stdout.pause();
    const from = gw.output().length;

    const statuses = await fill(agent, ctx.httpsPort, REQUESTS);
    assert.equal(statuses.length, REQUESTS);
    assert.deepEqual([...new Set(statuses)], [200], 'a blocked log never blocks an answer');
    // Still blocked: lines are being lost, and the gateway says so on /metrics.
    assert.ok(droppedTotal(await scrape()) > 0, 'lines were dropped while stdout was not read');

    gw.child.stdout.resume();
    await gw.waitFor(new RegExp(REPORT), 15_000, from);
    const raw = (): string[] => gw.output().slice(from).split('\n').filter((l) => l.startsWith('{'));
    const parse = (): Record<string, unknown>[] => raw().map((l) => JSON.parse(l) as Record<string, unknown>);
    const fillLines = (): string[] => raw().filter((l) => l.includes('"path":"/fill/'));
    const filled = (): number => fillLines().length;
    // Every access line is either written or counted as dropped.
    const deadline = Date.now() + 10_000;
    let dropped = droppedTotal(await scrape());
    while (filled() + dropped !== REQUESTS && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      dropped = droppedTotal(await scrape());
    }
    const written = filled();
    assert.equal(written + dropped, REQUESTS, `${written} written + ${dropped} dropped`);
    assert.ok(dropped > 0 && written > 0);

    // Memory: what was kept while blocked is what came out afterwards, at most the buffer plus
    // what the socket pair itself holds. Without the bound all 600 lines (~5 MB) come out.
    const keptBytes = fillLines().reduce((n, l) => n + l.length + 1, 0);
    const allowance = BUFFER + 4 * socketBufferBytes();
    assert.ok(keptBytes <= allowance, `${keptBytes} bytes of access lines were held back, more than ${allowance}`);

    const reports = parse().filter((l) => l.msg === REPORT);
    assert.ok(reports.length >= 1);
    assert.equal(
      reports.reduce((n, r) => n + Number(r.dropped_lines), 0),
      dropped,
      'the report lines together name every dropped line',
    );
    assert.equal(reports[0]!.level, 'warn');

    // Writing works normally again: a new request's line comes through.
    const res = await request(`https://127.0.0.1:${ctx.httpsPort}/fill/after`, { dispatcher: agent, headers: { host: 'localhost' } });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    await gw.waitFor(/"path":"\/fill\/after"/, 10_000, from);
    assert.equal(droppedTotal(await scrape()), dropped, 'nothing more is dropped once stdout is read');
  } finally {
    gw.kill();
    await gw.exited();
    await agent.close();
    await upstream.close();
  }
});

for (const [buffer, what] of [
  ['64kb', 'dropping lines'],
  ['', 'its buffer not yet full'],
] as const) {
  test(`SIGTERM while stdout is not read (${what}) still ends the process with 0`, async () => {
    const ctx = await policyContext();
    const upstream = await startUpstream((_req, res) => res.end('{}'));
    const file = join(ctx.dir, 'gateway.yaml');
    writeFileSync(file, policy(ctx, upstream.url));
    process.env.WXGW_LOG_BUFFER = buffer;
    const gw = await startCli(file);
    delete process.env.WXGW_LOG_BUFFER;
    const agent = new Agent({ connect: { ca: readFileSync(ctx.chain.root), servername: 'localhost' }, connections: 8 });
    try {
      gw.child.stdout.pause();
      // ~1 MB of lines: more than the socket pair holds, less than the default 4 MB buffer.
      const statuses = await fill(agent, ctx.httpsPort, 120);
      assert.deepEqual([...new Set(statuses)], [200]);
      const dropped = droppedTotal(await (await fetch(`http://127.0.0.1:${ctx.adminPort}/metrics`)).text());
      if (buffer === '') assert.equal(dropped, 0, 'the lines wait in the buffer');
      else assert.ok(dropped > 0);
      await agent.close();
      gw.child.kill('SIGTERM');
      // Bounded, so that a process held by its last log write fails the test instead of hanging it.
      const code = await Promise.race([gw.exited(), new Promise<'held'>((r) => setTimeout(() => r('held'), 20_000).unref())]);
      assert.equal(code, 0, 'the exit is not held by a log destination nobody reads');
    } finally {
      gw.kill();
      await upstream.close();
    }
  });
}
