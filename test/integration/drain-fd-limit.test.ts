// /readyz tells the truth about file descriptors, through the real binary run under a low soft
// RLIMIT_NOFILE: connections that hold descriptors push it past 90% and /readyz says 503 with the
// figures, before accepting fails with EMFILE; once they are gone it is ready again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { policyContext } from '../helpers/gateway.js';
import { repoRoot } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

const LIMIT = 200;

async function readyz(port: number): Promise<{ status: number; failing: string[] }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  const { failing } = (await res.json()) as { failing: string[] };
  return { status: res.status, failing };
}

test('/readyz is 503 with the figures past 90% of the descriptor limit, and ready again once they are freed', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'gateway.yaml');
  // The stuck connections must outlive the test's steps: a long handshake_timeout.
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  limits: { handshake_timeout: 10m }
  drain_delay: 1ms
  # One process: the descriptors counted are those of the pid under the low limit, which
  # accepts and serves every connection itself (with workers the primary accepts, they serve).
  workers: 1
${ctx.tlsSection}
upstreams:
  app: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: app }
defaults: { allow: any }
`,
  );
  // Hard and soft alike: Node raises its soft limit to the hard one at start.
  const child = spawn('sh', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, join(repoRoot, 'bin/wxgw.js'), 'start', '--config', file], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const wake = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (c: Buffer) => {
      out += c.toString();
      for (const w of wake) w();
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const sockets: Socket[] = [];
  try {
    await waitUntil(() => (out.includes('wxgw listening') || child.exitCode !== null ? true : undefined), 'the gateway to start', { wake, describe: () => out });
    assert.ok(out.includes('wxgw listening'), `gateway did not start:\n${out}`);
    assert.deepEqual(await readyz(ctx.adminPort), { status: 200, failing: [] });

    // Ten connections at a time until /readyz turns; each holds one descriptor in the gateway.
    // A connect completes in the kernel's backlog before the gateway accepts it: each batch waits
    // until the gateway holds its descriptors, or a busy machine could let two batches land
    // between one /readyz and the next and skip past 90% straight to the limit.
    const held = (): number => readdirSync(`/proc/${child.pid}/fd`).length;
    const base = held();
    let seen = await readyz(ctx.adminPort);
    while (seen.status === 200) {
      assert.ok(sockets.length < LIMIT, `${sockets.length} connections open and /readyz still ready:\n${out}`);
      await Promise.all(
        Array.from({ length: 10 }, () =>
          new Promise<void>((resolve, reject) => {
            const s = connect(ctx.httpsPort, '127.0.0.1', () => resolve());
            s.once('error', reject);
            sockets.push(s);
          }),
        ),
      );
      await waitUntil(() => (held() >= base + sockets.length ? true : undefined), `the gateway to accept ${sockets.length} connections`, { describe: () => `${held()} descriptors held` });
      seen = await readyz(ctx.adminPort);
    }
    assert.equal(seen.status, 503);
    assert.equal(seen.failing.length, 1, JSON.stringify(seen));
    const figures = /^file descriptors near the limit: (\d+) of (\d+) in use \(over 90%\)$/.exec(seen.failing[0]!);
    assert.ok(figures, JSON.stringify(seen));
    assert.equal(Number(figures[2]), LIMIT, 'the soft limit the process runs under');
    assert.ok(Number(figures[1]) > LIMIT * 0.9 && Number(figures[1]) < LIMIT, figures[0]);

    for (const s of sockets) s.destroy();
    const freed = Date.now() + 15_000;
    while ((seen = await readyz(ctx.adminPort)).status !== 200) {
      if (Date.now() > freed) assert.fail(`/readyz did not recover once the connections closed: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.deepEqual(seen.failing, []);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  } finally {
    for (const s of sockets) s.destroy();
    child.kill('SIGKILL');
  }
});
