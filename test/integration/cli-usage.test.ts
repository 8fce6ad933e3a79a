// The command line's contract with people and scripts: --version, --help per command, usage
// errors as one line with exit 2, unexpected failures as one line, `validate` reporting every
// error in one pass and as JSON, and the process named `wxgw`. Through the built binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { repoRoot } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

const bin = join(repoRoot, 'bin/wxgw.js');

function wxgw(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: repoRoot, timeout: 30_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

function goodPolicy(ctx: PolicyContext, extra = ''): string {
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: / }, upstream: legacy${extra} }
defaults: { allow: any }
`,
  );
  return file;
}

test('--version and `version` print the package version and exit 0', () => {
  const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  for (const args of [['--version'], ['version']]) {
    const r = wxgw(args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `wxgw ${version}\n`);
    assert.equal(r.stderr, '');
  }
});

test('every command has --help on stdout, exit 0, naming its options', () => {
  const expected: Record<string, RegExp> = {
    start: /usage: wxgw start --config FILE/,
    validate: /usage: wxgw validate --config FILE \[--format text\|json\]/,
    certs: /usage: wxgw certs --config FILE/,
    scan: /usage: wxgw scan .*--policy FILE/,
    deliveries: /usage: wxgw deliveries list\|show\|replay\|drop --config FILE/,
    demo: /usage: wxgw demo/,
  };
  for (const [command, usage] of Object.entries(expected)) {
    for (const flag of ['--help', '-h']) {
      const r = wxgw([command, flag]);
      assert.equal(r.status, 0, `${command} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, usage, `${command} ${flag}`);
      assert.equal(r.stderr, '', `${command} ${flag}`);
    }
  }
  const top = wxgw(['--help']);
  assert.equal(top.status, 0);
  for (const command of Object.keys(expected)) assert.match(top.stdout, new RegExp(`^  ${command} `, 'm'));
});

test('usage errors are one line on stderr naming the command, exit 2, nothing on stdout', () => {
  const cases: [string[], RegExp][] = [
    [[], /^wxgw: no command given; the commands are start, validate, certs, scan, deliveries, demo, version \(wxgw --help\)$/],
    [['serve'], /^wxgw: unknown command "serve"; the commands are start, validate, certs, scan, deliveries, demo, version \(wxgw --help\)$/],
    [['start'], /^wxgw start: --config FILE is required \(wxgw start --help\)$/],
    [['start', '--confg', 'x.yaml'], /^wxgw start: Unknown option '--confg' \(wxgw start --help\)$/],
    [['validate', '--config'], /^wxgw validate: Option '-c, --config <value>' argument missing \(wxgw validate --help\)$/],
    [['validate', '-c', 'x.yaml', '--format', 'xml'], /^wxgw validate: --format xml: expected one of text, json \(wxgw validate --help\)$/],
    [['certs', 'gateway.yaml'], /^wxgw certs: Unexpected argument 'gateway\.yaml' \(wxgw certs --help\)$/],
    [['demo', '--port', '1'], /^wxgw demo: Unknown option '--port' \(wxgw demo --help\)$/],
    [['version', 'now'], /^wxgw version: Unexpected argument 'now' \(wxgw version --help\)$/],
    [['scan', '--bogus'], /^wxgw scan: Unknown option '--bogus' \(wxgw scan --help\)$/],
  ];
  for (const [args, message] of cases) {
    const r = wxgw(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.deepEqual(lines(r.stderr).length, 1, `${args.join(' ')}: one line, got:\n${r.stderr}`);
    assert.match(r.stderr.trim(), message);
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('a failure at start that no check explains is one line with exit 1, not a stack trace', async () => {
  const ctx = await policyContext();
  const file = goodPolicy(ctx);
  const r = wxgw(['start', '--config', file], { WXGW_LOG_BUFFER: '12' });
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(lines(r.stderr), ['wxgw: WXGW_LOG_BUFFER="12" is not a size; expected a whole number and a unit with no space: b, kb, mb or gb (e.g. 512kb, 4mb)']);
  const level = wxgw(['start', '--config', file], { WXGW_LOG_LEVEL: 'loud' });
  assert.equal(level.status, 1, level.stderr);
  assert.equal(lines(level.stderr).length, 1, level.stderr);
  assert.match(level.stderr, /^wxgw: .*loud/);
  assert.doesNotMatch(r.stderr + level.stderr, /^\s+at /m);
});

/** A policy with an error outside tls (an unknown key) and a certificate error (a leaf-only file). */
function doublyBroken(ctx: PolicyContext): string {
  const leafOnly = join(ctx.dir, 'leaf.pem');
  const pem = readFileSync(ctx.chain.fullchain, 'utf8');
  writeFileSync(leafOnly, pem.slice(0, pem.indexOf('-----END CERTIFICATE-----') + 26));
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
tls:
  roots: ${ctx.chain.root}
  certificates:
    - { cert: leaf.pem, key: ${ctx.chain.key} }
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: api, match: { path_prefix: / }, upstream: legacy, timout: 5s }
defaults: { allow: any }
`,
  );
  return file;
}

test('validate and start report policy and certificate errors in one pass', async () => {
  const ctx = await policyContext();
  const file = doublyBroken(ctx);
  const r = wxgw(['validate', '--config', file]);
  assert.equal(r.status, 1);
  const shown = lines(r.stderr);
  assert.match(shown[0]!, /gateway\.yaml:7:\d+ +tls\.certificates\[0\]\.cert +.*leaf\.pem: chain incomplete/);
  assert.match(shown[1]!, /gateway\.yaml:11:\d+ +routes\[0\]\.timout +unknown key `timout`, did you mean `timeout`\?/);
  assert.match(shown.at(-1)!, /gateway\.yaml: 2 errors; the policy would not start$/);
  const started = wxgw(['start', '--config', file]);
  assert.equal(started.status, 1);
  assert.match(started.stderr, /chain incomplete[\s\S]*unknown key `timout`/);
});

test('validate leaves the certificates alone while the tls section itself is wrong', async () => {
  const ctx = await policyContext();
  const file = doublyBroken(ctx);
  writeFileSync(file, readFileSync(file, 'utf8').replace('  roots:', '  root:'));
  const r = wxgw(['validate', '--config', file]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /tls\.root +unknown key `root`, did you mean `roots`\?/);
  assert.doesNotMatch(r.stderr, /chain incomplete/);
});

test('validate --format json: one document on stdout with errors, warnings and report-mode rules', async () => {
  const ctx = await policyContext();
  const bad = wxgw(['validate', '--config', doublyBroken(ctx), '--format', 'json']);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, '');
  const doc = JSON.parse(bad.stdout) as { ok: boolean; errors: Record<string, unknown>[]; warnings: unknown[]; report_mode: unknown[] };
  assert.deepEqual(Object.keys(doc), ['ok', 'errors', 'warnings', 'report_mode']);
  assert.equal(doc.ok, false);
  assert.equal(doc.errors.length, 2);
  for (const e of doc.errors) assert.deepEqual(Object.keys(e), ['file', 'line', 'col', 'path', 'message', 'severity']);
  assert.deepEqual(
    doc.errors.map((e) => [e.line, e.path, e.severity]),
    [
      [7, 'tls.certificates[0].cert', 'error'],
      [11, 'routes[0].timout', 'error'],
    ],
  );
  assert.match(String(doc.errors[0]!.file), /gateway\.yaml$/);

  const ctx2 = await policyContext();
  const good = goodPolicy(ctx2, ', cors: { origins: ["https://a.example"] }, report: [cors]');
  const ok = wxgw(['validate', '--config', good, '--format', 'json']);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const okDoc = JSON.parse(ok.stdout) as typeof doc;
  assert.equal(okDoc.ok, true);
  assert.deepEqual(okDoc.errors, []);
  assert.deepEqual(okDoc.report_mode, [{ file: good, line: 11, route: 'api', rules: ['cors'] }]);
});

/** A copy of what docker/Dockerfile puts in /app: package.json, node_modules, dist, bin, the schema. */
function imageLayout(): string {
  const app = mkdtempSync(join(tmpdir(), 'wxgw-image-'));
  for (const part of ['package.json', 'dist', 'bin', 'config/policy.schema.json']) cpSync(join(repoRoot, part), join(app, part), { recursive: true });
  symlinkSync(join(repoRoot, 'node_modules'), join(app, 'node_modules'));
  return app;
}

/** `node ENTRY start --config FILE` from `cwd`; resolves with the child once it listens. */
async function startWith(entry: string, cwd: string, config: string) {
  const child = spawn(process.execPath, [entry, 'start', '--config', config], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const wake = new Set<() => void>();
  const gather = (c: Buffer): void => {
    out += c.toString();
    wake.forEach((w) => w());
  };
  child.stdout.on('data', gather);
  child.stderr.on('data', gather);
  child.once('exit', () => wake.forEach((w) => w()));
  const state = await waitUntil(() => (out.includes('wxgw listening') ? 'up' : child.exitCode !== null ? 'exited' : undefined), 'the gateway to listen', {
    wake,
    describe: () => out,
  });
  assert.equal(state, 'up', out);
  return child;
}

test('the running gateway is named wxgw, as pidof and ps see it: from a checkout and as the image starts it', async () => {
  const app = imageLayout();
  // README's `node bin/wxgw.js` from the checkout, and the image's ENTRYPOINT ["node", "/app/bin/wxgw.js"].
  for (const [entry, cwd] of [['bin/wxgw.js', repoRoot], [join(app, 'bin/wxgw.js'), app]] as const) {
    const ctx = await policyContext();
    const child = await startWith(entry, cwd, goodPolicy(ctx));
    try {
      const pid = child.pid!;
      assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'wxgw', entry);
      assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]!.trim(), 'wxgw', entry);
      const ps = spawnSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' });
      assert.equal(ps.stdout.trim(), 'wxgw', entry);
      const pidof = spawnSync('pidof', ['wxgw'], { encoding: 'utf8' });
      assert.ok(pidof.stdout.trim().split(/\s+/).includes(String(pid)), `pidof wxgw: ${pidof.stdout}`);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    }
  }
});

test('in the container image\'s layout, --version works and demo says in one line that it needs a checkout', () => {
  const app = imageLayout();
  const run = (...args: string[]) => spawnSync(process.execPath, [join(app, 'bin/wxgw.js'), ...args], { encoding: 'utf8', cwd: app, timeout: 30_000 });
  const v = run('--version');
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^wxgw \d+\.\d+\.\d+\n$/);
  const demo = run('demo');
  assert.equal(demo.status, 1);
  assert.deepEqual(lines(demo.stderr), [
    `wxgw: demo needs a source checkout of wxgw; config/gateway.example.yaml and docker/sample-backend/server.mjs not found under ${app} (the container image does not ship the demo)`,
  ]);
  assert.match(run('--help').stdout, /demo .*\n.*\(from a source checkout\)/);
});
