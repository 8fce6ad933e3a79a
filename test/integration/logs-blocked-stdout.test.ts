// The real binary with a reader that stops reading its stdout: the gateway keeps answering, holds
// at most its log buffer (WXGW_LOG_BUFFER) beyond what the pipe itself holds, drops and counts
// the rest, and says how many it dropped once the reader reads again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { policyContext } from '../helpers/gateway.js';
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

test('stdout not read: lines past the buffer are dropped and counted, requests all answered, one line reports the loss', async () => {
  const ctx = await policyContext();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
    res.end('{}');
  });
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: fill, match: { path_prefix: /fill/ }, upstream: legacy }
defaults: { allow: any }
`,
  );
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

    const statuses: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < REQUESTS) {
          const i = next++;
          const res = await request(`https://127.0.0.1:${ctx.httpsPort}/fill/${i}/${PAD}`, { dispatcher: agent, headers: { host: 'localhost' } });
          await res.body.dump();
          statuses.push(res.statusCode);
        }
      }),
    );
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
    assert.equal(reports[0]!.level, 40);

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
