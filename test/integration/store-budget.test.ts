// Two gateway instances sharing one real Redis, with the default command_timeout (200 ms), take
// bursts over 50 connections while their event loop is blocked past it, twice in each burst.
// Both gateways run in this process, and a busy wait stalls them as a burst of handshakes or a GC
// pause would. Redis answers at once; the answers wait in the sockets. The budget counts from the
// send to the first chance to read the answer, so the limit is met exactly, under deny and under
// allow, and what Redis counted is what was admitted (a store timed only by a timer admitted
// 88-94 under deny, with 100 counted, and 100-119 under allow, in this test).
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const RUNS = 10;
const LIMIT = 100;
/** Per instance: 300 in all, 25 connections each, every connection busy. */
const PER_INSTANCE = 150;
const CONNECTIONS = 25;
/** Longer than the default command_timeout (200 ms). */
const BLOCK_MS = 300;
/** The loop is blocked when this many answers have come back (of 300), mid-burst both times. */
const BLOCK_AT = [60, 160];

interface Answer {
  status: number;
  reason: string | undefined;
}

interface RunFigures {
  admitted: number;
  limited: number;
  unavailable: number;
  /** Admitted without a decision (allow): wxgw_decisions_total{reason="store_unavailable_allowed"}. */
  bypassed: number;
  counted: number;
  received: number;
}

/**
 * Keeps this process, both gateways in it, from running anything for `ms`. Called from
 * setImmediate, so the loop's next turn starts with the timers phase as it does after a poll
 * phase stalled by many sockets. (From a timer callback the stall would end in the poll phase,
 * which reads the answers before the timers phase next compares the clock.)
 */
function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Busy on purpose.
  }
}

describe('store budget: two instances, one Redis, the event loop blocked past command_timeout mid-burst', () => {
  let redis: TestRedis;
  let raw: Redis;
  let upstream: TestUpstream;
  const gateways: TestGateway[] = [];

  const routes = Array.from(
    { length: RUNS + 1 },
    (_, i) => `  - name: run${i}
    match: { path_prefix: /run${i}/ }
    upstream: legacy
    rate_limit: { key: ip, limit: ${LIMIT}, window: 60s }`,
  ).join('\n');

  /** The default command_timeout: the policy leaves it out. */
  const start = async (prefix: string, onUnavailable: 'deny' | 'allow'): Promise<TestGateway> => {
    const t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
store:
  kind: redis
  redis_url: \${REDIS_URL}
  key_prefix: "${prefix}"
  on_unavailable: ${onUnavailable}
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
${routes}
`,
      { env: { REDIS_URL: redis.url } },
    );
    gateways.push(t);
    assert.equal(t.gw.snapshot.store.kind, 'redis');
    return t;
  };

  /** What Redis holds for a run's key: the sum of its buckets. */
  const counted = async (prefix: string, run: number): Promise<number> => {
    const keys = (await raw.keys(`${prefix}*`)).filter((k) => k.includes(`{rl:run${run}:`));
    assert.equal(keys.length, 1, `keys for run ${run}: ${keys.join(', ')}`);
    const fields = await raw.hgetall(keys[0]!);
    return Object.entries(fields).reduce((sum, [f, v]) => (f === 's' ? sum : sum + Number(v)), 0);
  };

  const bypassedSoFar = async (pair: TestGateway[]): Promise<number> => {
    let n = 0;
    for (const t of pair) n += (await t.gw.decisions.snapshot()).store_unavailable_allowed ?? 0;
    return n;
  };

  /** One burst of 2 x 150 requests on fresh connections (handshakes included), blocked at BLOCK_AT unless `block` is false. */
  const burst = async (pair: TestGateway[], prefix: string, run: number, block: boolean): Promise<RunFigures> => {
    const path = `/run${run}/x`;
    const receivedBefore = upstream.received.filter((r) => r.url === path).length;
    const bypassedBefore = await bypassedSoFar(pair);
    const agents = pair.map(
      (t) => new Agent({ connect: { ca: t.ca, servername: 'localhost' }, connections: CONNECTIONS, headersTimeout: 10_000, bodyTimeout: 10_000 }),
    );
    const answers: Answer[] = [];
    const blocks = block ? [...BLOCK_AT] : [];
    try {
      await Promise.all(
        pair.map(async (t, i) => {
          let sent = 0;
          await Promise.all(
            Array.from({ length: CONNECTIONS }, async () => {
              while (sent < PER_INSTANCE) {
                sent++;
                const res = await request(`https://127.0.0.1:${t.port}${path}`, { dispatcher: agents[i]! });
                const text = await res.body.text();
                answers.push({ status: res.statusCode, reason: res.statusCode === 200 ? undefined : (JSON.parse(text) as { error: { reason: string } }).error.reason });
                if (blocks.length > 0 && answers.length === blocks[0]) {
                  blocks.shift();
                  // Whatever the gateways have in flight now waits out the block.
                  setImmediate(() => blockLoop(BLOCK_MS));
                }
              }
            }),
          );
        }),
      );
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
    assert.equal(answers.length, 2 * PER_INSTANCE);
    // Undos owed for hits given up on (none, when every answer was read in time) are in Redis.
    await Promise.all(pair.map((t) => (t.gw.store as RedisStore).settled()));
    const figures: RunFigures = {
      admitted: answers.filter((a) => a.status === 200).length,
      limited: answers.filter((a) => a.status === 429 && a.reason === 'rate_limited').length,
      unavailable: answers.filter((a) => a.status === 503 && a.reason === 'store_unavailable').length,
      bypassed: (await bypassedSoFar(pair)) - bypassedBefore,
      counted: await counted(prefix, run),
      received: upstream.received.filter((r) => r.url === path).length - receivedBefore,
    };
    assert.equal(
      figures.admitted + figures.limited + figures.unavailable,
      answers.length,
      `unexpected answers: ${JSON.stringify(answers.filter((a) => a.status !== 200 && a.status !== 429 && a.status !== 503))}`,
    );
    return figures;
  };

  const report = (t: TestContext, mode: string, runs: RunFigures[]): void => {
    t.diagnostic(`${mode}: admitted per run ${runs.map((r) => r.admitted).join(' ')} (limit ${LIMIT})`);
    t.diagnostic(`${mode}: counted in Redis per run ${runs.map((r) => r.counted).join(' ')}`);
    t.diagnostic(`${mode}: 503 store_unavailable per run ${runs.map((r) => r.unavailable).join(' ')}`);
    t.diagnostic(`${mode}: admitted without a decision per run ${runs.map((r) => r.bypassed).join(' ')}`);
  };

  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    upstream = await startUpstream();
  });

  after(async () => {
    for (const t of gateways) await t.close();
    raw?.disconnect();
    await upstream?.close();
    await redis?.stop();
  });

  test('deny: exactly the limit admitted in every blocked burst, and Redis counted exactly what was admitted', async (t) => {
    const prefix = 'wxgw-budget-deny:';
    const pair = [await start(prefix, 'deny'), await start(prefix, 'deny')];

    // First one burst without the deliberate block, to see what the loop's own lag is here.
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const free = await burst(pair, prefix, RUNS, false);
    lag.disable();
    t.diagnostic(
      `event-loop delay during an unblocked burst (2 instances, 50 connections, 300 requests): max ${(lag.max / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms`,
    );
    assert.equal(free.admitted, LIMIT);
    assert.equal(free.counted, LIMIT);

    const runs: RunFigures[] = [];
    for (let run = 0; run < RUNS; run++) runs.push(await burst(pair, prefix, run, true));
    report(t, 'deny', runs);
    for (const [i, r] of runs.entries()) {
      assert.equal(r.admitted, LIMIT, `run ${i}: ${JSON.stringify(r)}`);
      // A request refused because the store could not answer is not charged.
      assert.equal(r.counted, r.admitted, `run ${i}: ${JSON.stringify(r)}`);
      assert.equal(r.received, r.admitted, `run ${i}: ${JSON.stringify(r)}`);
    }
  });

  test('allow: exactly the limit admitted in every blocked burst while Redis is healthy', async (t) => {
    const prefix = 'wxgw-budget-allow:';
    const pair = [await start(prefix, 'allow'), await start(prefix, 'allow')];
    const runs: RunFigures[] = [];
    for (let run = 0; run < RUNS; run++) runs.push(await burst(pair, prefix, run, true));
    report(t, 'allow', runs);
    for (const [i, r] of runs.entries()) {
      assert.equal(r.admitted, LIMIT, `run ${i}: ${JSON.stringify(r)}`);
      assert.equal(r.counted, r.admitted, `run ${i}: ${JSON.stringify(r)}`);
      assert.equal(r.received, r.admitted, `run ${i}: ${JSON.stringify(r)}`);
    }
  });
});
