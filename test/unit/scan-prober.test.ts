// The scanner's budget: a hard cap that no option raises, pacing to --rate on an injected clock,
// and nothing sent once the cap is reached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CapReached, HARD_CAP, Prober, Unreachable } from '../../gateway/scan/prober.js';

async function server(): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  let n = 0;
  const s = createServer((_req, res) => {
    n++;
    res.end('{}');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, count: () => n, close: () => new Promise((r) => s.close(() => r())) };
}

test('no cap above the hard cap', () => {
  assert.throws(() => new Prober({ host: '127.0.0.1', scheme: 'http', port: 1, httpPort: 1 }, { rate: 10, cap: HARD_CAP + 1, timeoutMs: 1000 }), /above the hard cap/);
});

test('the cap stops sending: the server sees exactly the cap', async () => {
  const s = await server();
  try {
    const p = new Prober({ host: '127.0.0.1', scheme: 'http', port: s.port, httpPort: s.port }, { rate: 1000, cap: 3, timeoutMs: 2000, sleep: async () => {} });
    for (let i = 0; i < 3; i++) {
      const a = await p.send({ method: 'GET', path: '/' });
      assert.ok('status' in a && a.status === 200, JSON.stringify(a));
    }
    await assert.rejects(p.send({ method: 'GET', path: '/' }), CapReached);
    assert.equal(p.http, 3);
    assert.equal(s.count(), 3);
    assert.equal(p.capped, true);
  } finally {
    await s.close();
  }
});

test('sends are paced to the rate on the injected clock', async () => {
  const s = await server();
  try {
    let now = 1_000_000;
    const waits: number[] = [];
    const p = new Prober(
      { host: '127.0.0.1', scheme: 'http', port: s.port, httpPort: s.port },
      { rate: 4, cap: 10, timeoutMs: 2000, clock: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) },
    );
    for (let i = 0; i < 3; i++) await p.send({ method: 'GET', path: '/' });
    assert.deepEqual(waits, [250, 250]);
  } finally {
    await s.close();
  }
});

test('paths are paths: no absolute URL can name another host', async () => {
  const p = new Prober({ host: '127.0.0.1', scheme: 'http', port: 1, httpPort: 1 }, { rate: 10, cap: 5, timeoutMs: 1000 });
  await assert.rejects(p.send({ method: 'GET', path: 'http://elsewhere.example/' }), /must start with \//);
  assert.equal(p.sent, 0);
});

test('nobody at the first contact is Unreachable, not a finding', async () => {
  const s = await server();
  const port = s.port;
  await s.close();
  const p = new Prober({ host: '127.0.0.1', scheme: 'http', port, httpPort: port }, { rate: 1000, cap: 5, timeoutMs: 1000 });
  await assert.rejects(p.send({ method: 'GET', path: '/' }), Unreachable);
});
