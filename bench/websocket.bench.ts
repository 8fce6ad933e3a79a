// WebSocket through wxgw: messages per second echoed, through wxgw (wss, TLS 1.3) against the
// same backend directly (plain ws), and what each open session costs the gateway in memory.
//   node --import tsx bench/websocket.bench.ts
//   BENCH_SECONDS=10 BENCH_CONNECTIONS=32 BENCH_SOCKETS=5000 BENCH_MESSAGE=1024 node --import tsx bench/websocket.bench.ts
// Each connection sends one message and waits for its echo before the next (ping-pong), so the
// rate is per-message cost, not buffering. Backend, gateway and client run in their own processes;
// the client is this one. Memory: BENCH_SOCKETS idle sessions are opened through the gateway, and
// its heap (after full GCs) and RSS are read before and after, inside the gateway process.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, connections, median, rounds, seconds, startTs, waitReady } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const SOCKETS = Number(process.env.BENCH_SOCKETS ?? 1000);
const MESSAGE = Buffer.alloc(Number(process.env.BENCH_MESSAGE ?? 256), 'x');

interface Memory {
  heapUsed: number;
  rss: number;
  external: number;
  arrayBuffers: number;
}

function open(url: string, ca: Buffer): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const tls = { ca, servername: 'localhost' } as WebSocket.ClientOptions;
    const ws = new WebSocket(url, { ...tls, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Messages echoed per second over `connections` sockets, each one message in flight. */
async function pingPong(url: string, ca: Buffer, duration: number): Promise<number> {
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(url, ca)));
  let echoed = 0;
  const until = performance.now() + duration * 1000;
  const started = performance.now();
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          ws.on('message', () => {
            echoed++;
            if (performance.now() < until) ws.send(MESSAGE);
            else resolve();
          });
          ws.send(MESSAGE);
        }),
    ),
  );
  const rate = echoed / ((performance.now() - started) / 1000);
  await Promise.all(sockets.map((ws) => new Promise((r) => (ws.once('close', r), ws.close()))));
  return rate;
}

function ask(child: ChildProcess): Promise<Memory> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Memory));
    child.send('memory');
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-ws-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);
  const backendPort = await freePort();
  const gatewayPort = await freePort();
  const children: ChildProcess[] = [];
  try {
    const backend = startTs('targets/ws-echo.ts', [String(backendPort)]);
    children.push(backend);
    await waitReady(backend, 'the ws backend');
    const policy = join(dir, 'gateway.yaml');
    writeFileSync(
      policy,
      benchPolicy({
        port: gatewayPort,
        chain,
        upstream: `http://127.0.0.1:${backendPort}`,
        tail: ['defaults: { allow: any }'],
        route: [`    websocket: { max_connections: ${SOCKETS + connections}, idle_timeout: 10m }`],
      }),
    );
    const gateway = fork(join(here, 'targets/wxgw-memory.ts'), [policy, join(dir, 'wxgw.log')], {
      execArgv: ['--import', 'tsx', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(gateway);
    await waitReady(gateway, 'wxgw');

    const direct = `ws://127.0.0.1:${backendPort}/api/echo`;
    const through = `wss://127.0.0.1:${gatewayPort}/api/echo`;
    const rates: Record<string, number[]> = { direct: [], wxgw: [] };
    for (let round = 0; round < rounds; round++) {
      rates.direct!.push(await pingPong(direct, ca, seconds));
      rates.wxgw!.push(await pingPong(through, ca, seconds));
    }
    const d = median(rates.direct!);
    const w = median(rates.wxgw!);
    console.log(`echo, ${connections} connections, one ${MESSAGE.length}-byte message in flight each, median of ${rounds} rounds of ${seconds} s:`);
    console.log(`  direct ws:// to the backend   ${Math.round(d).toLocaleString('en')} msg/s`);
    console.log(`  through wxgw (wss://)         ${Math.round(w).toLocaleString('en')} msg/s  (${((w / d) * 100).toFixed(0)}% of direct)`);

    const before = await ask(gateway);
    const sockets: WebSocket[] = [];
    for (let i = 0; i < SOCKETS; i += 100) {
      sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, SOCKETS - i) }, () => open(through, ca)))));
    }
    const after = await ask(gateway);
    const per = (a: number, b: number): string => `${((b - a) / SOCKETS / 1024).toFixed(1)} KB`;
    console.log(`memory of the gateway process per open session (${SOCKETS} idle sessions, client and upstream legs):`);
    console.log(`  heap ${per(before.heapUsed, after.heapUsed)}, array buffers ${per(before.arrayBuffers, after.arrayBuffers)}, RSS ${per(before.rss, after.rss)}`);
    await Promise.all(sockets.map((ws) => new Promise((r) => (ws.once('close', r), ws.close()))));
  } finally {
    for (const c of children) c.kill();
  }
}

await main();
