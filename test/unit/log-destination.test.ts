// The bounded log destination on a real file: a burst larger than its buffer keeps what fits,
// drops and counts the rest, and the next accepted write is followed by one line saying how many
// were lost. (A reader that stops reading a pipe is test/integration/logs-blocked-stdout.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../gateway/observability/logger.js';
import { boundedDestination, droppedLines, logBufferBytes, DEFAULT_LOG_BUFFER } from '../../gateway/observability/log-destination.js';

const REPORT = 'log lines were dropped while the log destination was not accepting writes';
const BOUND = 64 * 1024;
const PAD = 'x'.repeat(1000);

type Line = Record<string, unknown>;

function lines(file: string): Line[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

/** Polls the file until `done` holds for its lines (bounded: a destination that never writes fails). */
async function waitForLines(file: string, done: (all: Line[]) => boolean): Promise<Line[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const all = lines(file);
    if (done(all)) return all;
    if (Date.now() > deadline) assert.fail(`log file never reached the expected state; ${all.length} lines`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const reports = (all: Line[]): Line[] => all.filter((l) => l.msg === REPORT);

test('a burst past the buffer is dropped and counted, then reported once; a second burst is reported on its own', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'wxgw-logdest-')), 'out.log');
  const dest = boundedDestination(file, BOUND);
  const logger = createLogger({ destination: dest });
  const dropped = droppedLines(logger);
  try {
    // All in one turn of the event loop: nothing can be written meanwhile, so the buffer fills.
    for (let i = 0; i < 500; i++) logger.info({ burst: 1, i, pad: PAD }, 'line');
    const firstDropped = dropped();
    assert.ok(firstDropped > 0, 'a 500 KB burst into a 64 KB buffer drops lines');
    assert.ok(firstDropped < 500, 'what fits is kept');

    let all = await waitForLines(file, (a) => reports(a).length === 1);
    const kept = all.filter((l) => l.burst === 1).length;
    assert.equal(kept + firstDropped, 500, 'every line is either written or counted');
    assert.ok(kept * (PAD.length + 50) <= BOUND, `at most the buffer was held: ${kept} lines kept`);
    const [first] = reports(all);
    assert.equal(first!.dropped_lines, firstDropped);
    assert.equal(first!.level, 'warn', 'a warning');
    assert.equal(all.at(-1), first, 'the report follows every line kept before it');
    // Kept lines are the first ones, in order: dropping never reorders what is written.
    assert.deepEqual(all.filter((l) => l.burst === 1).map((l) => l.i), Array.from({ length: kept }, (_, i) => i));

    for (let i = 0; i < 500; i++) logger.info({ burst: 2, i, pad: PAD }, 'line');
    const secondDropped = dropped() - firstDropped;
    assert.ok(secondDropped > 0);
    all = await waitForLines(file, (a) => reports(a).length === 2);
    assert.equal(reports(all)[1]!.dropped_lines, secondDropped, 'the second report counts only its own burst');
    assert.equal(all.filter((l) => l.burst === 2).length + secondDropped, 500);
  } finally {
    dest.end?.();
  }
});

test('lines within the buffer are all written, with no report and nothing counted', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'wxgw-logdest-')), 'out.log');
  const dest = boundedDestination(file, BOUND);
  const logger = createLogger({ destination: dest });
  try {
    for (let i = 0; i < 40; i++) logger.info({ i, pad: PAD }, 'line');
    const all = await waitForLines(file, (a) => a.length >= 40);
    assert.equal(all.length, 40);
    assert.equal(droppedLines(logger)(), 0);
  } finally {
    dest.end?.();
  }
});

test('a destination that is not a bounded one reports no drops', () => {
  const logger = createLogger({ destination: { write: () => undefined } });
  assert.equal(droppedLines(logger)(), 0);
  assert.equal(droppedLines(logger.child({ a: 1 }))(), 0);
});

test('a child logger counts the drops of its root destination', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'wxgw-logdest-')), 'out.log');
  const dest = boundedDestination(file, BOUND);
  const child = createLogger({ destination: dest }).child({ component: 'x' });
  try {
    for (let i = 0; i < 200; i++) child.info({ pad: PAD }, 'line');
    assert.ok(droppedLines(child)() > 0);
  } finally {
    dest.end?.();
  }
});

test('WXGW_LOG_BUFFER: policy-style sizes, a default, and clear errors', () => {
  assert.equal(logBufferBytes(undefined), DEFAULT_LOG_BUFFER);
  assert.equal(logBufferBytes(''), DEFAULT_LOG_BUFFER);
  assert.equal(DEFAULT_LOG_BUFFER, 4 * 1024 * 1024);
  assert.equal(logBufferBytes('16mb'), 16 * 1024 * 1024);
  assert.equal(logBufferBytes('512KB'), 512 * 1024);
  assert.equal(logBufferBytes('64kb'), 64 * 1024);
  assert.equal(logBufferBytes(' 1GB '), 1024 ** 3);
  for (const bad of ['4096', 'lots', '4 mb', '1.5mb', '-4mb', '4mib']) {
    assert.throws(() => logBufferBytes(bad), new RegExp(`^Error: WXGW_LOG_BUFFER=${JSON.stringify(bad)} is not a size; expected .*kb, mb or gb`), bad);
  }
  assert.throws(() => logBufferBytes('1kb'), /below the minimum of 64kb/);
});
