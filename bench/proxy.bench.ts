// Throughput and latency of wxgw over HTTPS keep-alive (TLS 1.3), routing only, with a
// 1,000-CIDR allowlist plus CORS on the route, and behind trusted proxies with a 3-hop
// X-Forwarded-For on every request, side by side in one run with: direct HTTP to the backend, a
// plain Fastify + @fastify/http-proxy server, and a bare node:https + undici.Pool forwarder (the
// ceiling for one Node process).
// Every server runs in its own process; the load generator runs in this one.
// Targets are measured in interleaved rounds and the median is reported, so that a noisy moment
// on a shared machine does not land on one target only. Latency is also measured on a single
// connection, where it shows per-request cost rather than queueing, and the server process's own
// CPU time per request is measured at a fixed rate below saturation: on two cores shared by load
// generator, backend and proxy it is the steadier measure of what each proxy costs.
//   npm run bench                      (defaults: 3 rounds of 6 s per target, 16 connections)
//   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=32 npm run bench
//   BENCH_BASELINE=../wxgw-previous npm run bench   (also runs that checkout's wxgw, same policies)
// The table's ratios need the fastify and bare rows, so every target always runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, connections, fixedRate, measure, probe, rounds, seconds, startTs, target, waitReady, type Result, type Target } from './lib.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const PATH = '/api/feed';
const GUARDED = 'wxgw (1,000-CIDR allowlist + CORS)';
const FORWARDED = 'wxgw, trusted_proxies + 3-hop X-Forwarded-For';
const BASELINE_ROUTING = 'wxgw (routing only)';
// A load balancer's usual trust list: private and loopback ranges, IPv4 and IPv6.
const TRUSTED_PROXIES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '::1/128', 'fc00::/7', 'fe80::/10', '2001:db8:100::/40'];
// The client, then two proxies inside 10/8; the loopback peer (the load generator) is the third.
const XFF = '203.0.113.7, 10.1.2.3, 10.4.5.6';
// Another checkout of wxgw (e.g. the previous release, with its own `npm ci`), measured in the
// same rounds on the same policies, so a change is compared with what it replaces.
const BASELINE = process.env.BENCH_BASELINE;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);

  const backendPort = await freePort();
  const backend = spawn(process.execPath, [join(root, 'docker/sample-backend/server.mjs'), String(backendPort)], {
    env: { ...process.env, HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  const upstream = `http://127.0.0.1:${backendPort}`;
  await new Promise((r) => setTimeout(r, 300));

  const fastifyPort = await freePort();
  const barePort = await freePort();
  const wxgwPort = await freePort();
  const guardedPort = await freePort();
  const forwardedPort = await freePort();
  const policyFor = (port: number, tail: string[], route: string[], server: string[] = []): string =>
    benchPolicy({ port, chain, upstream, tail, route, server });
  const policy = join(dir, 'gateway.yaml');
  writeFileSync(policy, policyFor(wxgwPort, ['defaults: { allow: any }'], []));
  // 1,000 disjoint /24s with the client's own 127.0.0.1 in the middle, so neither end of the
  // list is a shortcut; the Origin matches the subdomain pattern, the costlier kind of match.
  const cidrs = Array.from({ length: 999 }, (_, i) => `${10 + (i >> 8)}.${i & 255}.${(i * 37) & 255}.0/24`);
  cidrs.splice(500, 0, '127.0.0.1/32');
  const origin = 'https://m.shop.example.com';
  const guardedPolicy = join(dir, 'gateway-guarded.yaml');
  writeFileSync(
    guardedPolicy,
    policyFor(guardedPort, [], [
      `    allow: [${cidrs.join(', ')}]`,
      '    cors: { origins: ["https://app.example.com", "https://*.shop.example.com"], credentials: true, methods: [GET, POST], headers: [content-type], expose_headers: [x-request-id] }',
    ]),
  );

  // Only the walked-to client may call the route: a walk that stopped early would be refused
  // (403), and the run fails on any non-2xx.
  const forwardedPolicy = join(dir, 'gateway-forwarded.yaml');
  writeFileSync(
    forwardedPolicy,
    policyFor(forwardedPort, [], ['    allow: [203.0.113.0/24]'], [`  trusted_proxies: [${TRUSTED_PROXIES.map((c) => JSON.stringify(c)).join(', ')}]`]),
  );

  const children: ChildProcess[] = [backend];
  const results: Result[] = [];
  try {
    const targets: Target[] = [target('direct HTTP to the backend', `${upstream}${PATH}`, backend.pid)];
    const servers: [string, ChildProcess, number][] = [
      ['fastify + @fastify/http-proxy', startTs('targets/fastify-proxy.ts', [String(fastifyPort), upstream, chain.fullchain, chain.key]), fastifyPort],
      ['bare node:https + undici.Pool', startTs('targets/bare-forwarder.ts', [String(barePort), upstream, chain.fullchain, chain.key]), barePort],
      ['wxgw (routing only)', startTs('targets/wxgw.ts', [policy, join(dir, 'wxgw.log')]), wxgwPort],
      [GUARDED, startTs('targets/wxgw.ts', [guardedPolicy, join(dir, 'wxgw-guarded.log')]), guardedPort],
      [FORWARDED, startTs('targets/wxgw.ts', [forwardedPolicy, join(dir, 'wxgw-forwarded.log')]), forwardedPort],
    ];
    if (BASELINE) {
      const [routingPort, forwardingPort] = [await freePort(), await freePort()];
      const routingPolicy = join(dir, 'baseline.yaml');
      writeFileSync(routingPolicy, policyFor(routingPort, ['defaults: { allow: any }'], []));
      const viaProxies = join(dir, 'baseline-forwarded.yaml');
      writeFileSync(viaProxies, readFileSync(forwardedPolicy, 'utf8').replace(`:${forwardedPort}"`, `:${forwardingPort}"`));
      servers.push(
        [`baseline ${BASELINE_ROUTING}`, startTs('targets/wxgw.ts', [routingPolicy, join(dir, 'baseline.log')], BASELINE), routingPort],
        [`baseline ${FORWARDED}`, startTs('targets/wxgw.ts', [viaProxies, join(dir, 'baseline-forwarded.log')], BASELINE), forwardingPort],
      );
    }
    const headers: Record<string, Record<string, string>> = { [GUARDED]: { origin }, [FORWARDED]: { 'x-forwarded-for': XFF }, [`baseline ${FORWARDED}`]: { 'x-forwarded-for': XFF } };
    for (const [name, child, port] of servers) {
      children.push(child);
      await waitReady(child, name);
      targets.push(target(name, `https://127.0.0.1:${port}${PATH}`, child.pid, headers[name]));
    }
    // Measure the guarded path, not a refusal or a CORS-less answer.
    const guarded = targets.find((t) => t.name === GUARDED)!;
    const allowed = (await probe(guarded, ca))['access-control-allow-origin'];
    if (allowed !== origin) throw new Error(`${GUARDED}: expected Access-Control-Allow-Origin ${origin}, got ${String(allowed)}`);
    await probe(targets.find((t) => t.name === FORWARDED)!, ca);
    results.push(...(await measure(targets, ca)));
  } finally {
    for (const c of children) c.kill();
  }

  const base = results.find((r) => r.name.startsWith('fastify'))!;
  const bare = results.find((r) => r.name.startsWith('bare'))!;
  const direct = results[0]!;
  const routing = results.find((r) => r.name === 'wxgw (routing only)')!;
  const guardedResult = results.find((r) => r.name === GUARDED)!;
  const forwardedResult = results.find((r) => r.name === FORWARDED)!;
  const versusRouting = (r: Result): string =>
    `${(r.rps / routing.rps).toFixed(2)}x req/s, ` +
    `${r.cpuUs !== undefined && routing.cpuUs !== undefined ? `${r.cpuUs - routing.cpuUs} µs CPU per request` : 'CPU not measured'}`;
  const lines = [
    `wxgw proxy benchmark: GET ${PATH} (1 KB JSON), HTTPS keep-alive, ` +
      `${connections} connections, median of ${rounds} rounds of ${seconds} s, node ${process.version}`,
    '',
    `| target | req/s | p50 ms | p99 ms | 1-conn p50 µs | 1-conn p99 µs | CPU µs/req at ${fixedRate}/s | RSS MB | vs fastify proxy | vs bare |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.solo50} | ${r.solo99} | ${r.cpuUs ?? '-'} | ${r.rssMb ?? '-'} | ` +
        `${(r.rps / base.rps).toFixed(2)}x | ${(r.rps / bare.rps).toFixed(2)}x |`,
    ),
    '',
    `wxgw p99 above direct: ${(routing.p99 - direct.p99).toFixed(2)} ms at ${connections} connections, ` +
      `${((routing.solo99 - direct.solo99) / 1000).toFixed(2)} ms on one connection`,
    `allowlist + CORS vs routing only: ${versusRouting(guardedResult)}`,
    `trusted_proxies + 3-hop X-Forwarded-For vs routing only: ${versusRouting(forwardedResult)}`,
  ];
  if (BASELINE) {
    for (const name of [BASELINE_ROUTING, FORWARDED]) {
      const now = results.find((r) => r.name === name)!;
      const was = results.find((r) => r.name === `baseline ${name}`)!;
      lines.push(`${name} vs the baseline checkout: ${(now.rps / was.rps).toFixed(3)}x req/s, ${now.cpuUs !== undefined && was.cpuUs !== undefined ? `${now.cpuUs - was.cpuUs} µs CPU per request` : 'CPU not measured'}`);
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
