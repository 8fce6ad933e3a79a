// A process whose stdout reader is gone for good (a cluster worker whose primary died) still
// exits: once readerGone() says so, the lines buffered at exit are given up instead of being
// retried against EPIPE, which SonicBoom's flushSync would do forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const logger = fileURLToPath(new URL('../../gateway/observability/logger.ts', import.meta.url));
const destination = fileURLToPath(new URL('../../gateway/observability/log-destination.ts', import.meta.url));

test('with its reader gone, a line buffered at exit does not hold the exit', async () => {
  const script = `
    import { createLogger } from ${JSON.stringify(logger)};
    import { readerGone } from ${JSON.stringify(destination)};
    const log = createLogger();
    process.stdin.once('data', () => {
      readerGone(log);
      log.info('last words, buffered: shorter than one batch');
      process.exit(0);
    });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // The reader goes away first: every write to the child's stdout fails with EPIPE from now on.
  await new Promise<void>((resolve) => {
    child.stdout.once('close', resolve);
    child.stdout.destroy();
  });
  child.stdin.end('go\n');
  const held = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    assert.equal(await exited, 0, 'the exit was held by a write nobody will read (killed after 20 s)');
  } finally {
    clearTimeout(held);
  }
});
