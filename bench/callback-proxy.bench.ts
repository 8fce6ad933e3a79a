// WeChat message-push callbacks through a real wxgw over HTTPS keep-alive, against plain proxying
// of the same bytes, in one run:
//   - "plain proxy": the safe-mode push body POSTed to a route without wechat_callback;
//   - "safe mode, decrypt": the same push on a `wechat_callback: { decrypt: true }` route: query
//     parsed, XML parsed, msg_signature checked, timestamp, AES-CBC decrypt, nonce claimed in the
//     store (memory), decrypted body forwarded, the upstream's passive reply encrypted and signed;
//   - "plain mode": a signature-only push (the body is only checked for well-formedness).
// The upstream answers every POST with the same ~300-byte text reply XML, so every target carries
// the same reply back; only the callback route seals it.
// Every callback needs a fresh nonce and a message of its own (a new MsgId: the gateway answers a
// message it delivered before from the store): autocannon's setupRequest builds, encrypts and
// signs each request as it is sent. The gateway and the upstream run in their own processes; the load generator here.
// Targets run in interleaved rounds and the median is reported.
//   node --import tsx bench/callback-proxy.bench.ts
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=32 node --import tsx bench/callback-proxy.bench.ts
//   BENCH_CPU_PROF=/tmp/prof node --import tsx bench/callback-proxy.bench.ts   (the gateway under --cpu-prof)
// "CPU µs/req" is the gateway process's own CPU time per request (/proc), which a loaded machine
// distorts less than req/s.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { WechatMsgCrypto } from '../gateway/wechat/msg-crypto.js';
import { wechatSignature } from '../gateway/wechat/signature.js';
import { freePort } from '../test/helpers/ports.js';
import { textMessage } from '../test/helpers/wechat-callback.js';
import { benchPolicy, cpuSeconds } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);
const MESSAGE_BYTES = Number(process.env.BENCH_MESSAGE_BYTES ?? 500);
const cpuProf = process.env.BENCH_CPU_PROF;

const account = { appid: 'wx1234567890abcdef', token: 'tok3nForBench', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
const msgCrypto = new WechatMsgCrypto(account.encodingAesKey, account.appid);
/** A message of MESSAGE_BYTES with a MsgId never sent before in this process. */
const freshMessage = (): string => textMessage(MESSAGE_BYTES, String(20_000_000_000_000_000n + BigInt(process.pid) * 1_000_000_000n + BigInt(++counter)));
const safeBodyOf = (encrypt: string): string => `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
const message = textMessage(MESSAGE_BYTES);
const safeBody = safeBodyOf(msgCrypto.encrypt(message));

// A passive text reply, as a legacy backend would answer a text message.
const UPSTREAM = `
import { createServer } from 'node:http';
const reply = '<xml><ToUserName><![CDATA[oABCDEFG0123456789]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>' +
  '<CreateTime>1714037060</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[' + 'r'.repeat(120) + ']]></Content></xml>';
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(reply) });
    res.end(reply);
  });
});
server.keepAliveTimeout = 72000;
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.send?.('ready'));
`;

interface Target {
  name: string;
  /** The request autocannon sends, built afresh for each request. */
  request: () => { path: string; headers: Record<string, string>; body: string };
  rps: number[];
  p50: number[];
  p99: number[];
  cpu: number[];
}

let counter = 0;
/** A nonce never used before in this process, and the current timestamp. */
function stamp(): { timestamp: string; nonce: string } {
  return { timestamp: String(Math.floor(Date.now() / 1000)), nonce: `${process.pid}${++counter}` };
}

function safeRequest(): { path: string; headers: Record<string, string>; body: string } {
  const { timestamp, nonce } = stamp();
  const encrypt = msgCrypto.encrypt(freshMessage());
  const q = new URLSearchParams({
    signature: wechatSignature([account.token, timestamp, nonce]),
    timestamp,
    nonce,
    openid: 'oABCDEFG0123456789',
    encrypt_type: 'aes',
    msg_signature: wechatSignature([account.token, timestamp, nonce, encrypt]),
  });
  return { path: `/wx/safe?${q}`, headers: { 'content-type': 'text/xml' }, body: safeBodyOf(encrypt) };
}

function plainModeRequest(): { path: string; headers: Record<string, string>; body: string } {
  const { timestamp, nonce } = stamp();
  const q = new URLSearchParams({ signature: wechatSignature([account.token, timestamp, nonce]), timestamp, nonce, openid: 'oABCDEFG0123456789' });
  return { path: `/wx/plain?${q}`, headers: { 'content-type': 'text/xml' }, body: freshMessage() };
}

function proxyRequest(): { path: string; headers: Record<string, string>; body: string } {
  // The same bytes and the same kind of query as the safe-mode push, on a route that only proxies.
  const safe = safeRequest();
  return { ...safe, path: safe.path.replace('/wx/safe', '/api/push') };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before it was ready`)));
  });
}

async function load(url: string, t: Target, duration: number): Promise<autocannon.Result> {
  const r = await autocannon({
    url,
    connections,
    pipelining: 1,
    duration,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({ ...req, ...t.request() }),
      },
    ],
  });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${t.name}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  return r;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const upstreamPort = await freePort();
  const gatewayPort = await freePort();
  const children: ChildProcess[] = [];
  try {
    const upstream = spawn(process.execPath, ['--input-type=module', '-e', UPSTREAM, String(upstreamPort)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(upstream);
    await waitReady(upstream, 'upstream');

    const policy = join(dir, 'gateway.yaml');
    writeFileSync(
      policy,
      benchPolicy({
        port: gatewayPort,
        chain,
        upstream: `http://127.0.0.1:${upstreamPort}`,
        sections: ['wechat:', `  appid: ${account.appid}`, `  token: ${account.token}`, `  encoding_aes_key: ${account.encodingAesKey}`],
        tail: ['defaults: { allow: any }'],
        routes: [
          '  - name: wx-safe',
          '    match: { path: /wx/safe }',
          '    upstream: legacy',
          '    wechat_callback: { decrypt: true }',
          '  - name: wx-plain',
          '    match: { path: /wx/plain }',
          '    upstream: legacy',
          '    wechat_callback: { decrypt: false }',
        ],
      }),
    );
    const gateway = fork(join(here, 'targets/wxgw.ts'), [policy, join(dir, 'wxgw.log')], { execArgv: ['--import', 'tsx', ...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(gateway);
    await waitReady(gateway, 'wxgw');
    const url = `https://127.0.0.1:${gatewayPort}`;

    const targets: Target[] = [
      { name: 'plain proxy, same body (no wechat_callback)', request: proxyRequest, rps: [], p50: [], p99: [], cpu: [] },
      { name: 'safe mode, decrypt: true (verify + decrypt + seal reply)', request: safeRequest, rps: [], p50: [], p99: [], cpu: [] },
      { name: 'plain mode (signature only)', request: plainModeRequest, rps: [], p50: [], p99: [], cpu: [] },
    ];
    // BENCH_ONLY=safe,proxy: the targets whose names contain one of the words (a profile of one path).
    const only = process.env.BENCH_ONLY?.split(',');
    if (only) targets.splice(0, targets.length, ...targets.filter((t) => only.some((w) => t.name.includes(w))));
    for (const t of targets) await load(url, t, 2); // warm-up: JIT, TLS sessions, upstream pool
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        const cpuBefore = cpuSeconds(gateway.pid)!;
        const r = await load(url, t, seconds);
        t.cpu.push(((cpuSeconds(gateway.pid)! - cpuBefore) * 1e6) / r.requests.total);
        t.rps.push(r.requests.average);
        t.p50.push(r.latency.p50);
        t.p99.push(r.latency.p99);
      }
    }

    const base = median(targets[0]!.rps);
    const lines = [
      `wxgw callback benchmark: POST of a ${Buffer.byteLength(safeBody)}-byte safe-mode push (${Buffer.byteLength(message)}-byte message), ` +
        `HTTPS keep-alive, ${connections} connections, median of ${rounds} rounds of ${seconds} s, node ${process.version}`,
      '',
      '| target | req/s | p50 ms | p99 ms | vs plain proxy | gateway CPU µs/req | CPU vs plain proxy |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...targets.map(
        (t) =>
          `| ${t.name} | ${Math.round(median(t.rps))} | ${median(t.p50)} | ${median(t.p99)} | ${(median(t.rps) / base).toFixed(2)}x | ` +
          `${Math.round(median(t.cpu))} | ${(median(targets[0]!.cpu) / median(t.cpu)).toFixed(2)}x |`,
      ),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) {
      if (c.exitCode !== null) continue;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGINT'); // the gateway exits cleanly on SIGINT, so --cpu-prof writes its profile
      await exited;
    }
  }
}

await main();
