// What the logs and metrics say while Redis fails, with a real redis-server: a request admitted
// under `on_unavailable: allow` gets its access line with the decision, and wxgw_store_up reads 0
// while commands time out on a connection that is still open (DEBUG SLEEP), not only once the
// connection drops, and 1 again after the next command that succeeds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

describe('store failures in the logs and metrics', () => {
  let redis: TestRedis;
  let upstream: TestUpstream;
  let t: TestGateway;
  let n = 0;

  before(async () => {
    redis = await startRedis();
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
store:
  kind: redis
  redis_url: \${REDIS_URL}
  key_prefix: "wxgw-logs:"
  command_timeout: 200ms
  on_unavailable: allow
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 100000, window: 60s }
`,
      { env: { REDIS_URL: redis.url } },
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
    await redis?.stop();
  });

  /** One request on a fresh path, with the access line it got. */
  const send = async (): Promise<{ res: ClientResponse; line: Record<string, unknown> }> => {
    const path = `/api/r${n++}`;
    const res = await httpsRequest(t.port, t.ca, { path });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const line = t.logs.find((l) => l.msg === 'request' && l.path === path);
      if (line) return { res, line };
      if (Date.now() > deadline) assert.fail(`no access line for ${path}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const limited = (res: ClientResponse): boolean => res.headers['ratelimit-limit'] !== undefined;
  const storeUp = async (): Promise<string> => (await t.gw.metrics.registry.getSingleMetricAsString('wxgw_store_up')).trim().split('\n').at(-1)!;

  /** Until a request is decided by Redis (bounded: a store that never connects fails the test). */
  const untilLimited = async (): Promise<{ res: ClientResponse; line: Record<string, unknown> }> => {
    for (let i = 0; i < 200; i++) {
      const r = await send();
      if (limited(r.res)) return r;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.fail('no request was ever decided by Redis');
  };

  test('commands timing out on an open connection turn wxgw_store_up to 0; the next command that succeeds turns it back to 1', async () => {
    const healthy = await untilLimited();
    assert.equal(healthy.line.reason, undefined, 'an ordinary admission has no reason');
    assert.equal(await storeUp(), 'wxgw_store_up{kind="redis"} 1');

    // Redis hangs with every connection open: only the command timeout can tell. A request that
    // reached Redis before the sleep began (or after it ended) was decided by it; then again.
    let during: { res: ClientResponse; line: Record<string, unknown> } | undefined;
    for (let round = 0; round < 3 && !during; round++) {
      const sleeper = connect(redis.port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => {
        sleeper.once('connect', resolve);
        sleeper.once('error', reject);
      });
      const awake = new Promise<void>((resolve) => sleeper.once('data', () => resolve()));
      sleeper.write('DEBUG SLEEP 3\r\n');
      try {
        const r = await send();
        if (!limited(r.res)) {
          during = r;
          // Read while Redis still sleeps: the gauge does not wait for the connection to drop.
          assert.equal(await storeUp(), 'wxgw_store_up{kind="redis"} 0');
        }
      } finally {
        await awake;
        sleeper.destroy();
      }
    }
    assert.ok(during, 'no request ever met the sleeping Redis');
    assert.equal(during.res.status, 200, 'on_unavailable: allow admits it');
    assert.equal(during.line.reason, 'store_unavailable_allowed');
    assert.equal(t.logs.filter((l) => l.msg === 'redis store commands time out; requests needing it fail until one answers in time').length, 1);

    // Still 0 until a command has actually succeeded: nothing has asked Redis anything yet.
    assert.equal(await storeUp(), 'wxgw_store_up{kind="redis"} 0');
    const after = await untilLimited();
    assert.equal(after.line.reason, undefined);
    assert.equal(await storeUp(), 'wxgw_store_up{kind="redis"} 1');
    assert.ok(t.logs.some((l) => l.msg === 'redis store answering in time again'));
  });

  test('Redis killed: requests admitted under on_unavailable: allow carry store_unavailable_allowed in their access line', async () => {
    await untilLimited();
    const countedBefore = (await t.gw.decisions.snapshot()).store_unavailable_allowed ?? 0;
    await redis.kill();
    try {
      const lines: Record<string, unknown>[] = [];
      for (let i = 0; i < 5; i++) {
        const { res, line } = await send();
        assert.equal(res.status, 200);
        lines.push(line);
      }
      for (const line of lines) {
        assert.equal(line.reason, 'store_unavailable_allowed', JSON.stringify(line));
        assert.equal(line.status, 200);
      }
      assert.equal((await t.gw.decisions.snapshot()).store_unavailable_allowed, countedBefore + 5, 'each line matches one counted decision');
    } finally {
      await redis.restart();
    }
    // Back: decided by Redis again, and the access line is an ordinary one.
    const back = await untilLimited();
    assert.equal(back.line.reason, undefined);
  });
});
