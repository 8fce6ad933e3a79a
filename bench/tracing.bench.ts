// What OpenTelemetry tracing costs on the 1 KB route, in one run:
//   - tracing off: no `tracing` section (the default);
//   - tracing on, sample_ratio 1: every request a server and an upstream span, all exported over
//     OTLP/HTTP to a local sink (in this process, reading and discarding each batch);
//   - tracing on, sample_ratio 0: spans made and trace context propagated, nothing recorded or sent.
// Every gateway runs in its own process; the load generator and the sink run in this one.
//   node --import tsx bench/tracing.bench.ts
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 node --import tsx bench/tracing.bench.ts
//   BENCH_BASELINE=../wxgw-previous ...  also runs that checkout's wxgw (without tracing code) beside tracing off
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, connections, measure, rounds, seconds, startTs, table, target, waitReady, type Target } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const PATH = '/api/member';
const BASELINE = process.env.BENCH_BASELINE;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);

  let exported = 0;
  let batches = 0;
  const sink = createServer((req, res) => {
    req.on('data', (c: Buffer) => (exported += c.length));
    req.on('end', () => {
      batches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`;

  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], {
    env: { ...process.env, HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  const upstream = `http://127.0.0.1:${backendPort}`;
  await new Promise((r) => setTimeout(r, 300));

  const tracing = (ratio: number): string[] => ['tracing:', `  otlp_endpoint: "${endpoint}"`, `  sample_ratio: ${ratio}`];
  const variants: [string, string[], string?][] = [
    ['tracing off', []],
    ['tracing on, sample_ratio 1', tracing(1)],
    ['tracing on, sample_ratio 0', tracing(0)],
  ];
  if (BASELINE) variants.push(['baseline checkout', [], BASELINE]);

  const children: ChildProcess[] = [backend];
  try {
    const targets: Target[] = [];
    for (const [i, [name, sections, tree]] of variants.entries()) {
      const port = await freePort();
      const file = join(dir, `gateway-${i}.yaml`);
      writeFileSync(file, benchPolicy({ port, chain, upstream, sections, tail: ['defaults: { allow: any }'] }));
      const child = startTs('targets/wxgw.ts', [file, join(dir, `wxgw-${i}.log`)], tree);
      children.push(child);
      await waitReady(child, name);
      targets.push(target(name, `https://127.0.0.1:${port}${PATH}`, child.pid));
    }
    const results = await measure(targets, ca);
    const off = results[0]!;
    const lines = [
      `wxgw tracing benchmark: GET ${PATH} (1 KB user JSON), HTTPS keep-alive, ${connections} connections, ` +
        `median of ${rounds} rounds of ${seconds} s, node ${process.version}`,
      '',
      ...table(results, off, 'tracing off'),
      '',
      ...results.slice(1).map((r) => `${r.name}: ${(r.rps / off.rps).toFixed(2)}x tracing-off req/s, ${(r.cpuUs ?? 0) - (off.cpuUs ?? 0)} µs CPU per request`),
      `exported to the sink: ${batches} batches, ${(exported / 1024 / 1024).toFixed(1)} MB of OTLP JSON`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) c.kill();
    sink.close();
  }
}

await main();
