// In-process cost of one access-log line, the part of a request's CPU that the line's field set
// decides: the line before issue 16 (epoch-ms time, numeric level, 11 fields) against the line
// now (ISO-8601 time, level name, the documented field set of docs/operations.md with a hashed
// openid), both written through pino to a sink that only counts bytes, so neither disk nor load
// enters the figure. The fields are computed as the gateway computes them (access-log-fields.ts).
//   node --import tsx bench/access-line.bench.ts        (BENCH_LINES=500000 for a longer run)
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { accessLogger, createLogger } from '../gateway/observability/logger.js';
import { openidHash, userAgent } from '../gateway/proxy/access-log-fields.js';
import type { RequestState } from '../gateway/proxy/request-state.js';

const LINES = Number(process.env.BENCH_LINES ?? 200_000);
const UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323a) NetType/WIFI Language/zh_CN';
/** What openidHash() reads of a request: its verified openid and the policy's log key; 1,000 users take turns. */
const LOG = { openid_hmac_key: 'openid-log-key-0123456789abcdef' };
const users = Array.from({ length: 1000 }, (_, i) => ({ openid: `oUpF8uMuAJO_M2pxb1Q9zNjWeS6o${i}`, snapshot: { policy: { server: { log: LOG } } } }) as unknown as RequestState);

function sink(): { stream: Writable; bytes: () => number } {
  let bytes = 0;
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done();
    },
  });
  return { stream, bytes: () => bytes };
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

type Variant = { name: string; logger: pino.Logger; line: (i: number) => Record<string, unknown> };

function before(dest: Writable): Variant {
  // The logger and line of main before this change: pino's defaults for time and level.
  const logger = pino({ base: { service: 'wxgw' } }, dest).child({}, { redact: { paths: [] }, formatters: { log: (o: object) => o } });
  return {
    name: 'before: 11 fields, epoch time, numeric level',
    logger,
    line: (i) => ({
      request_id: `6f1c2d9e-3b7a-4c1e-9a55-0d2f7c1b${String(i % 10000).padStart(4, '0')}`,
      route: 'api',
      method: 'GET',
      path: '/api/feed',
      query: undefined,
      status: 200,
      reason: undefined,
      mask: undefined,
      shadow: undefined,
      client_ip: '203.0.113.7',
      upstream_ms: round(1.234 + (i % 7)),
      total_ms: round(1.9 + (i % 7)),
    }),
  };
}

function after(dest: Writable): Variant {
  const logger = accessLogger(createLogger({ destination: dest }));
  return {
    name: 'after: documented field set, ISO time, level name, openid HMAC',
    logger,
    line: (i) => ({
      request_id: `6f1c2d9e-3b7a-4c1e-9a55-0d2f7c1b${String(i % 10000).padStart(4, '0')}`,
      trace_id: undefined,
      route: 'api',
      method: 'GET',
      host: 'api.example.com',
      path: '/api/feed',
      query: undefined,
      status: 200,
      reason: undefined,
      mask: undefined,
      shadow: undefined,
      client_ip: '203.0.113.7',
      user_agent: userAgent(UA),
      bytes_in: 0,
      bytes_out: 1024,
      tls_version: 'TLSv1.3',
      sni: 'api.example.com',
      upstream: 'legacy',
      upstream_status: 200,
      upstream_ms: round(1.234 + (i % 7)),
      total_ms: round(1.9 + (i % 7)),
      openid_hash: openidHash(users[i % 1000]!),
    }),
  };
}

function run(make: (dest: Writable) => Variant): { name: string; usPerLine: number; bytesPerLine: number } {
  const { stream, bytes } = sink();
  const v = make(stream);
  for (let i = 0; i < 20_000; i++) v.logger.info(v.line(i), 'request');
  const startBytes = bytes();
  const start = process.hrtime.bigint();
  for (let i = 0; i < LINES; i++) v.logger.info(v.line(i), 'request');
  const ns = Number(process.hrtime.bigint() - start);
  return { name: v.name, usPerLine: ns / LINES / 1000, bytesPerLine: (bytes() - startBytes) / LINES };
}

// Alternated three times each; the medians are reported.
const results: Record<string, { us: number[]; bytes: number }> = {};
for (let r = 0; r < 3; r++) {
  for (const make of [before, after]) {
    const res = run(make);
    (results[res.name] ??= { us: [], bytes: res.bytesPerLine }).us.push(res.usPerLine);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const lines = [`access line, ${LINES} lines per run, median of 3`, '| variant | µs per line | bytes per line |', '|---|---|---|'];
for (const [name, r] of Object.entries(results)) lines.push(`| ${name} | ${median(r.us).toFixed(2)} | ${r.bytes.toFixed(0)} |`);
process.stdout.write(lines.join('\n') + '\n');
