import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, parseSize } from '../../gateway/policy/units.js';
import { edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

function why(parsed: { ok: boolean; why?: string }): string {
  assert.equal(parsed.ok, false);
  return parsed.why!;
}

test('durations: a number and a unit, converted to milliseconds', () => {
  const cases: [string, number][] = [
    ['500ms', 500],
    ['60s', 60_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['0.5m', 30_000],
  ];
  for (const [text, ms] of cases) assert.deepEqual(parseDuration(text), { ok: true, value: ms }, text);
});

test('durations: each malformed form gets its own explanation and the expected form', () => {
  const cases: [string, string][] = [
    ['60', 'has no unit'],
    ['60 seconds', 'uses `seconds`, which is not a duration unit'],
    ['60 s', 'has a space between the number and the unit'],
    ['-1', 'is negative'],
    ['-1s', 'is negative'],
    ['1.5.2s', 'is not a number followed by a unit'],
    ['0s', 'is zero, but a positive duration is required'],
    ['0.0ms', 'is zero'],
    ['1h30m', 'combines several units'],
    ['5M', 'uses `M`'],
    ['10y', 'uses `y`, which is not a duration unit'],
    ['0.5ms', 'is not a whole number of milliseconds'],
    ['', 'is empty'],
    ['s', 'is not a number followed by a unit'],
  ];
  for (const [text, expected] of cases) {
    const message = why(parseDuration(text));
    assert.ok(message.includes(expected), `${text}: ${message}`);
    assert.ok(message.includes('e.g. 500ms, 30s'), `${text}: ${message}`);
  }
});

test('sizes: b, kb, mb, gb in any case, 1kb = 1024 bytes', () => {
  const cases: [string, number][] = [
    ['512b', 512],
    ['64kb', 65_536],
    ['1mb', 1_048_576],
    ['1MB', 1_048_576],
    ['1.5kb', 1536],
    ['1gb', 1_073_741_824],
  ];
  for (const [text, bytes] of cases) assert.deepEqual(parseSize(text), { ok: true, value: bytes }, text);
  for (const [text, expected] of [
    ['1', 'has no unit'],
    ['1 mb', 'has a space'],
    ['1m', 'uses `m`, which is not a size unit'],
    ['1mib', 'uses `mib`'],
    ['0kb', 'is zero, but a positive size is required'],
    ['1.3b', 'is not a whole number of bytes'],
    ['lots', 'is not a number followed by a unit'],
  ] as const) {
    const message = why(parseSize(text));
    assert.ok(message.includes(expected), `${text}: ${message}`);
    assert.ok(message.includes('e.g. 512b, 64kb, 1mb'), `${text}: ${message}`);
  }
});

test('bad durations and sizes in a policy point at the value and give the expected form', async () => {
  const text = edit({
    8: '  limits: { body: 1 mb, headers_timeout: 60, request_timeout: 0s }',
    12: '  expiry_warning: 60 seconds',
    18: '  legacy: { url: "http://127.0.0.1:9000", timeout: 1.5.2s }',
    24: '    timeout: -1',
  });
  expectDiagnostics(await reject(text), [
    { line: 8, col: 19, path: 'server.limits.body', message: ['`1 mb` has a space between the number and the unit', 'e.g. 512b'] },
    { line: 8, col: 42, path: 'server.limits.headers_timeout', message: ['`60` has no unit', 'e.g. 500ms, 30s'] },
    { line: 8, col: 63, path: 'server.limits.request_timeout', message: ['`0s` is zero, but a positive duration is required'] },
    { line: 12, col: 19, path: 'tls.expiry_warning', message: ['`60 seconds` uses `seconds`, which is not a duration unit'] },
    { line: 18, col: 52, path: 'upstreams.legacy.timeout', message: ['`1.5.2s` is not a number followed by a unit'] },
    { line: 24, col: 14, path: 'routes[0].timeout', message: ['`-1` is negative'] },
  ]);
});

test('a timeout beyond what Node timers can hold is refused', async () => {
  expectDiagnostics(await reject(edit({ 18: '  legacy: { url: "http://127.0.0.1:9000", timeout: 30d }' })), [
    { line: 18, col: 52, path: 'upstreams.legacy.timeout', message: ['`30d` is longer than the longest timeout Node supports'] },
  ]);
});
