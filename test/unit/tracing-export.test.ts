// Failing trace exports are said in the log, at most once a minute with a count of what failed
// meanwhile, and never slow or stop anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { createLogger } from '../../gateway/observability/logger.js';
import { LoggedExporter } from '../../gateway/observability/tracing-sdk.js';

function fixture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  let fail = true;
  const inner: SpanExporter = {
    export: (_spans, done) => done(fail ? { code: ExportResultCode.FAILED, error: new Error('connect ECONNREFUSED 127.0.0.1:4318') } : { code: ExportResultCode.SUCCESS }),
    shutdown: () => Promise.resolve(),
  };
  let now = 1_000_000;
  const exporter = new LoggedExporter(inner, 'http://collector:4318/v1/traces', createLogger({ level: 'info', destination: sink }), () => now);
  const send = (n: number): Promise<ExportResult> => new Promise((resolve) => exporter.export(new Array<ReadableSpan>(n), resolve));
  return { lines, send, advance: (ms: number) => (now += ms), succeed: () => (fail = false) };
}

test('one line for a run of failures, the next after a minute with how many batches failed meanwhile', async () => {
  const f = fixture();
  assert.equal((await f.send(3)).code, ExportResultCode.FAILED, 'the result goes on to the span processor as it was');
  await f.send(2);
  f.advance(59_999);
  await f.send(1);
  await new Promise((r) => setImmediate(r));
  assert.equal(f.lines.length, 1);
  assert.equal(f.lines[0]!['failed_batches'], 1);
  assert.equal(f.lines[0]!['spans'], 3);
  assert.match(String(f.lines[0]!['why']), /ECONNREFUSED/);
  f.advance(1);
  await f.send(4);
  await new Promise((r) => setImmediate(r));
  assert.equal(f.lines.length, 2);
  assert.equal(f.lines[1]!['failed_batches'], 3, 'the two held back and this one');
});

test('successful exports log nothing', async () => {
  const f = fixture();
  f.succeed();
  assert.equal((await f.send(5)).code, ExportResultCode.SUCCESS);
  await new Promise((r) => setImmediate(r));
  assert.equal(f.lines.length, 0);
});
