// `wxgw scan`'s own decisions, in process: colour on a TTY only and never with NO_COLOR, the
// exit code of a policy lint, and one line on stderr for a usage error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScan, type ScanIo } from '../../gateway/scan/command.js';

function io(isTTY: boolean, env: Record<string, string | undefined> = {}): ScanIo & { out: string; err: string } {
  const o = {
    out: '',
    err: '',
    env,
    stdout: { isTTY, write: (s: string) => void (o.out += s) },
    stderr: { write: (s: string) => void (o.err += s) },
  };
  return o;
}

const broken = join(mkdtempSync(join(tmpdir(), 'wxgw-scan-')), 'broken.yaml');
writeFileSync(broken, 'version: 1\nroutes: [\n');

test('a rejected policy: exit 1, coloured on a TTY', async () => {
  const tty = io(true);
  assert.equal(await runScan(['--policy', broken], tty), 1);
  assert.match(tty.out, /\x1b\[31m/);
  assert.match(tty.out, /WX0-POLICY-INVALID .*broken\.yaml:\d+:\d+/);
  assert.equal(tty.err, '');
});

test('no colour with NO_COLOR, nor when stdout is not a terminal', async () => {
  for (const o of [io(true, { NO_COLOR: '1' }), io(false)]) {
    assert.equal(await runScan(['--policy', broken], o), 1);
    assert.ok(!o.out.includes('\x1b['), o.out);
  }
});

test('a usage error: exit 2, one line on stderr, nothing on stdout', async () => {
  const o = io(false);
  assert.equal(await runScan(['https://example.test', '--rate', '0'], o), 2);
  assert.equal(o.out, '');
  assert.equal(o.err, 'wxgw scan: --rate 0: expected a whole number from 1 to 100 (wxgw scan --help)\n');
});
