// A reload validates the policy in a worker thread; what comes back must be exactly what the
// in-thread loader gives (`wxgw validate` and a start use that one): the same PolicyConfig, the
// same diagnostics with the same positions, from the TypeScript sources and from dist/ alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicy, type LoadedPolicy } from '../../gateway/policy/load.js';
import { loadPolicyOffThread, type OffThreadOptions } from '../../gateway/policy/load-off-thread.js';
import { Uncarriable, pack, unpack } from '../../gateway/policy/packed.js';
import { PolicyError, type Diagnostic, type PolicyConfig } from '../../gateway/types/policy.js';
import { repoRoot } from '../helpers/process.js';
import { BASE, ENV, POLICY_FILE, edit } from '../fixtures/policy/harness.js';

/** The values `npm start` gives the example policy (gateway/demo.ts), fixed here. */
const DEMO_ENV = {
  WX_APP_SECRET: 'demo-app-secret-0123456789abcdef',
  WX_TOKEN: 'Tok3nTok3nTok3nTok3nTok3nTok3n12',
  WX_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  SESSION_SIGNING_KEY: Buffer.alloc(32, 7).toString('base64'),
};
const DOCKER_ENV = { WXGW_UPSTREAM_URL: 'http://backend:9000', WXGW_REDIS_URL: 'redis://redis:6379' };

/** The repository's policies laid out as they expect: config/ and its certs beside it. */
const dir = mkdtempSync(join(tmpdir(), 'wxgw-worker-'));
mkdirSync(join(dir, 'config'));
mkdirSync(join(dir, 'certs'));
for (const name of ['root.pem', 'fullchain.pem', 'privkey.pem']) writeFileSync(join(dir, 'certs', name), 'not read by the policy loader\n');
const example = join(dir, 'config', 'gateway.example.yaml');
copyFileSync(join(repoRoot, 'config/gateway.example.yaml'), example);
// The container policy names certs/ beside itself, as in /etc/wxgw.
const docker = join(dir, 'gateway.docker.yaml');
copyFileSync(join(repoRoot, 'config/gateway.docker.yaml'), docker);

/** More routes than one chunk carries, each with its own limits and CORS, in a known order. */
function manyRoutes(count: number): string {
  const routes = Array.from({ length: count }, (_, i) =>
    [
      `  - name: r${i}`,
      `    match: { path_prefix: /svc${i}/, methods: [GET] }`,
      `    upstream: ${i % 2 ? 'legacy' : 'billing'}`,
      `    rate_limit: { key: ip, limit: ${i + 1}, window: 1m }`,
      ...(i % 3 === 0 ? ['    cors: { origins: ["https://app.example.com"] }'] : []),
    ].join('\n'),
  );
  return BASE.replace(/^routes:\n[\s\S]*?(?=^defaults:)/m, `routes:\n${routes.join('\n')}\n`);
}

const noFallback: OffThreadOptions = { logger: { warn: (_f, message) => assert.fail(`fell back to the main thread: ${message}`) } };

async function outcome(load: Promise<LoadedPolicy>): Promise<LoadedPolicy | Diagnostic[]> {
  try {
    return await load;
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected PolicyError, got ${String(err)}`);
    return err.diagnostics;
  }
}

async function sameBothWays(file: string, env: Record<string, string>, opts: OffThreadOptions = noFallback): Promise<LoadedPolicy | Diagnostic[]> {
  const inThread = await outcome(loadPolicy(file, { env }));
  const offThread = await outcome(loadPolicyOffThread(file, { env, ...opts }));
  assert.deepStrictEqual(offThread, inThread);
  return offThread;
}

test('the example policies come back from the worker exactly as the main thread reads them', async () => {
  const demo = await sameBothWays(example, DEMO_ENV);
  assert.ok(!Array.isArray(demo), 'the example policy is valid');
  assert.ok(demo.config.upstreams.get('legacy')!.url instanceof URL, 'upstream URLs are URL objects again');
  assert.ok(demo.config.wechat!.api_base instanceof URL);
  assert.ok(demo.config.mask_profiles instanceof Map && demo.config.mask_profiles.has('wx-user'));

  const container = await sameBothWays(docker, DOCKER_ENV);
  assert.ok(!Array.isArray(container));
  assert.deepEqual(
    container.warnings.map((w) => w.path),
    ['server.admin.listen'],
  );

  writeFileSync(POLICY_FILE, BASE);
  assert.ok(!Array.isArray(await sameBothWays(POLICY_FILE, ENV)));
});

test('routes travel in chunks and arrive complete and in order', async () => {
  writeFileSync(POLICY_FILE, manyRoutes(450));
  const loaded = await sameBothWays(POLICY_FILE, ENV);
  assert.ok(!Array.isArray(loaded));
  assert.deepEqual(
    loaded.config.routes.map((r) => r.name),
    Array.from({ length: 450 }, (_, i) => `r${i}`),
  );
  assert.equal(loaded.config.routes[449]!.rate_limits[0]!.limit, 450);
});

test('a policy with errors gets the same diagnostics, positions included, either way', async () => {
  writeFileSync(
    POLICY_FILE,
    edit({
      8: '  limits: { body: 2mb, headers_timeout: 5 seconds, request_timeout: 1m }',
      18: '  legacy: { url: "http://127.0.0.1:9000", timout: 10s }',
      27: '    upstream: nowhere',
    }),
  );
  const diagnostics = await sameBothWays(POLICY_FILE, ENV);
  assert.ok(Array.isArray(diagnostics));
  assert.deepEqual(
    diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line} ${d.path}`),
    ['8 server.limits.headers_timeout', '18 upstreams.legacy.timout', '27 routes[1].upstream'],
  );
  // A reference to an unset variable, and a file that cannot be read.
  writeFileSync(POLICY_FILE, BASE);
  assert.ok(Array.isArray(await sameBothWays(POLICY_FILE, {})));
  const missing = await sameBothWays(join(dir, 'no-such.yaml'), ENV);
  assert.ok(Array.isArray(missing));
  assert.match(missing[0]!.message, /cannot read the policy file/);
});

test('the compiled worker in dist/ gives the same answers', async () => {
  const entry = new URL('../../dist/gateway/policy/load-worker.js', import.meta.url);
  const opts = { ...noFallback, entry };
  assert.ok(!Array.isArray(await sameBothWays(example, DEMO_ENV, opts)), 'run `npm run build` first: this reads dist/');
  writeFileSync(POLICY_FILE, edit({ 27: '    upstream: nowhere' }));
  assert.ok(Array.isArray(await sameBothWays(POLICY_FILE, ENV, opts)));
});

test('when no worker can start, the policy is validated on this thread, and the log says so', async () => {
  const lines: { err: Error; message: string }[] = [];
  const opts: OffThreadOptions = { entry: new URL('./no-such-worker.js', import.meta.url), logger: { warn: ({ err }, message) => lines.push({ err, message }) } };
  assert.ok(!Array.isArray(await sameBothWays(example, DEMO_ENV, opts)));
  writeFileSync(POLICY_FILE, edit({ 27: '    upstream: nowhere' }));
  assert.ok(Array.isArray(await sameBothWays(POLICY_FILE, ENV, opts)));
  assert.equal(lines.length, 2);
  assert.equal(lines[0]!.message, 'policy worker unavailable; validating on the main thread, requests wait meanwhile');
  assert.match(lines[0]!.err.message, /no-such-worker/);
});

test('a worker that cannot hand the policy over leads to the main thread; a worker that failed, to its error', async () => {
  const entry = new URL('../fixtures/policy/fake-load-worker.ts', import.meta.url);
  const lines: string[] = [];
  const logger = { warn: ({ err }: { err: Error }, message: string) => lines.push(`${message}: ${err.message}`) };
  const uncarriable = JSON.stringify({ kind: 'uncarriable', message: 'a Compiled instance at extra' });
  const loaded = await loadPolicyOffThread(example, { env: { ...DEMO_ENV, ANSWER: uncarriable }, entry, logger });
  assert.deepStrictEqual(loaded, await loadPolicy(example, { env: DEMO_ENV }));
  assert.deepEqual(lines, ['policy worker unavailable; validating on the main thread, requests wait meanwhile: the policy worker cannot hand over a Compiled instance at extra']);

  const failed = JSON.stringify({ kind: 'failed', message: 'boom', stack: 'Error: boom\n    at validate (load.ts:1:1)' });
  await assert.rejects(loadPolicyOffThread(example, { env: { ...DEMO_ENV, ANSWER: failed }, entry, logger }), (err: unknown) => {
    assert.ok(err instanceof Error && !(err instanceof PolicyError));
    assert.equal(err.message, 'boom');
    assert.match(err.stack!, /at validate/);
    return true;
  });
  assert.equal(lines.length, 1, 'a failure is not retried on the main thread');
});

test('packing refuses what a worker would hand over changed, and restores URLs where they stood', async () => {
  writeFileSync(POLICY_FILE, BASE);
  const loaded = await loadPolicy(POLICY_FILE, { env: ENV });
  class Compiled {}
  const withClass = { ...loaded, config: { ...loaded.config, extra: { deep: [new Compiled()] } } as unknown as PolicyConfig };
  assert.throws(() => pack(withClass), (err: unknown) => err instanceof Uncarriable && /Compiled instance at extra\.deep\.0/.test(err.message));
  const withFunction = { ...loaded, config: { ...loaded.config, extra: () => 1 } as unknown as PolicyConfig };
  assert.throws(() => pack(withFunction), Uncarriable);

  const nested = withRoutesCopied(loaded);
  nested.config.routes[1]!.match.path = new URL('http://x.example/deep') as unknown as string;
  const back = await unpack(structuredClone(pack(nested)));
  assert.deepStrictEqual(back, nested);
});

/** A copy whose routes can be changed without touching the original. */
function withRoutesCopied(loaded: LoadedPolicy): LoadedPolicy {
  const config = { ...loaded.config, routes: loaded.config.routes.map((r) => ({ ...r, match: { ...r.match } })) };
  return { config, warnings: loaded.warnings };
}
