// Every shell command README.md and docs/*.md show, run as written where that is safe on this
// machine: the CLI offline, and curl and `wxgw scan` against the demo they describe. A command
// that cannot run here (docker, kubectl, a placeholder host) is listed below with the reason, so a
// new command in the docs fails this test until it is classified.
//
// Commands are the lines of ```sh (bash, shell, console) blocks, `$ `-prefixed lines in any
// block, and lines of unlabelled blocks that start with a command this project documents; what a
// `$ ` line is shown to print must be what it prints. The demo runs on free ports (as
// test/integration/demo.test.ts does): the documented 8443, 8080, 9901 and 9000 in a command are
// replaced by them, nothing else is changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { openidHash } from '../../gateway/proxy/access-log-fields.js';
import type { RequestState } from '../../gateway/proxy/request-state.js';
import { freePort } from '../helpers/ports.js';
import { repoRoot } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

interface DocCommand {
  where: string;
  text: string;
  /** For a `$ ` line: the lines shown after it up to a blank line, i.e. what it prints. */
  output?: string[];
}

const SHELL_BLOCKS = new Set(['sh', 'bash', 'shell', 'console']);
const COMMAND_WORDS = /^(npx wxgw|wxgw|curl|kill|pkill|docker|kubectl|npm|setfacl|cp) /;

function extract(file: string): DocCommand[] {
  const out: DocCommand[] = [];
  let block: string | undefined;
  let pending: DocCommand | undefined;
  let printing: DocCommand | undefined;
  readFileSync(join(repoRoot, file), 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const fence = /^\s*```(\w*)/.exec(raw);
      if (fence) {
        block = block === undefined ? fence[1]! : undefined;
        return;
      }
      if (block === undefined) return (printing = undefined);
      const line = raw.trim();
      if (printing && !line.startsWith('$ ')) {
        if (line === '') printing = undefined;
        else printing.output!.push(raw);
        return;
      }
      if (pending) {
        pending.text += ' ' + line.replace(/\\$/, '').trim();
        if (!line.endsWith('\\')) (out.push(pending), (pending = undefined));
        return;
      }
      const dollar = line.startsWith('$ ');
      const shell = SHELL_BLOCKS.has(block) || (block === '' && COMMAND_WORDS.test(line));
      if (!dollar && !shell) return;
      const text = dollar ? line.slice(2) : line;
      if (text === '' || text.startsWith('#')) return;
      const cmd: DocCommand = { where: `${file}:${i + 1}`, text: text.replace(/\\$/, '').trim() };
      if (dollar && !SHELL_BLOCKS.has(block)) printing = Object.assign(cmd, { output: [] });
      if (text.endsWith('\\')) pending = cmd;
      else out.push(cmd);
    });
  return out;
}

const DOCS = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** `exit`: the code the docs say the command ends with; 0 unless given. */
type Plan = { run: 'offline' | 'demo'; exit?: number } | { skip: string };

/** First match wins. */
const PLANS: [RegExp, Plan][] = [
  [/<token>/, { skip: 'a placeholder for the token the login above prints; the $TOKEN form in docs/policy.md runs' }],
  [/openssl dgst -sha256 -hmac/, { skip: 'run by its own test below, with a key file of its own' }],
  [/^cp docker\/observability\/wxgw-alerts\.yaml \/etc\/prometheus\/$/, { skip: "writes into the Prometheus server's own folder" }],
  [/^promtool check rules \/etc\/prometheus\/wxgw-alerts\.yaml$/, { skip: "the same check runs on the repo's copy in test/unit/observability-files.test.ts" }],
  [/^curl .*https:\/\/localhost\/api\//, { skip: 'the compose deployment, published on port 443' }],
  [/^npx wxgw (--version|validate --help|deliveries --help)$/, { run: 'offline' }],
  [/^curl .*(https:\/\/localhost:8443|http:\/\/localhost:8080|http:\/\/127\.0\.0\.1:9901)/, { run: 'demo' }],
  [/^npx wxgw scan http:\/\/127\.0\.0\.1:9000 [^|]*$/, { run: 'demo', exit: 1 }],
  [/^npx wxgw scan (http:\/\/127\.0\.0\.1:9000|https:\/\/localhost:8443) /, { run: 'demo' }],
  [/^npx wxgw demo\b/, { skip: 'runs the demo in the foreground until Ctrl-C; the curl and scan commands below run against it' }],
  [/^npm (ci|start|test)\b|^npm ci && npm start/, { skip: 'installs, runs the demo in the foreground or the whole suite; test/integration/demo.test.ts runs the demo' }],
  [/^npm install --prefix|^export PATH=/, { skip: 'installs Node.js from the registry into the home directory' }],
  [/^(docker|kubectl) /, { skip: 'needs a Docker engine or a cluster; test/integration/deploy-files.test.ts checks the files these use' }],
  [/^setfacl |^cp \.env\.example /, { skip: 'changes files of the checkout for a container deployment' }],
  [/^(pkill|kill) /, { skip: 'signals every wxgw on the machine; test/integration/cli-usage.test.ts checks the process name pidof and pkill find' }],
  [/api\.example\.com|10\.0\.0\.5|gw\/policy\.yaml|config\/gateway\.yaml/, { skip: 'a placeholder host or policy file for the reader\'s own' }],
];

function plan(cmd: DocCommand): Plan | undefined {
  return PLANS.find(([pattern]) => pattern.test(cmd.text))?.[1];
}

function planned(run: 'offline' | 'demo'): DocCommand[] {
  return commands.filter((c) => {
    const p = plan(c);
    return p !== undefined && 'run' in p && p.run === run;
  });
}

const commands = DOCS.flatMap(extract);

function sh(text: string, env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync('sh', ['-c', text], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, out: r.stdout + r.stderr };
}

test('the docs show commands, and every one is run here or skipped with a reason', () => {
  assert.ok(commands.length > 20, `found only ${commands.length} commands`);
  const unclassified = commands.filter((c) => plan(c) === undefined).map((c) => `${c.where}: ${c.text}`);
  assert.deepEqual(unclassified, [], 'classify these in PLANS (run them, or skip them with the reason)');
  assert.ok(planned('offline').length + planned('demo').length >= 10);
  // README shows what the two demo scans print; the demo test compares it line by line.
  assert.deepEqual(commands.filter((c) => c.output !== undefined && c.output.length > 5).map((c) => c.where.replace(/:\d+$/, '')), ['README.md', 'README.md']);
});

test('the offline commands run as written and exit 0', () => {
  for (const cmd of planned('offline')) {
    // npx finds the checkout's own bin (package.json `bin`), as in a fresh clone after npm ci.
    const r = sh(cmd.text);
    assert.equal(r.status, 0, `${cmd.where}: ${cmd.text}\n${r.out}`);
  }
});

interface Demo {
  child: ChildProcessByStdio<null, Readable, Readable>;
  ports: { https: number; http: number; admin: number; backend: number };
}

async function startDemo(): Promise<Demo> {
  const ports = { https: await freePort(), http: await freePort(), admin: await freePort(), backend: await freePort() };
  const env = {
    ...process.env,
    WXGW_DEMO_HTTPS_PORT: String(ports.https),
    WXGW_DEMO_HTTP_PORT: String(ports.http),
    WXGW_DEMO_ADMIN_PORT: String(ports.admin),
    WXGW_DEMO_BACKEND_PORT: String(ports.backend),
  };
  const child = spawn(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'demo'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const wake = new Set<() => void>();
  const gather = (c: Buffer): void => {
    out += c.toString();
    for (const w of wake) w();
  };
  child.stdout.on('data', gather);
  child.stderr.on('data', gather);
  child.once('exit', () => wake.forEach((w) => w()));
  const state = await waitUntil(() => (out.includes('try:') ? 'up' : child.exitCode !== null ? 'exited' : undefined), 'the demo to start', {
    wake,
    timeoutMs: 30_000,
    describe: () => out,
  });
  assert.equal(state, 'up', out);
  return { child, ports };
}

/** This demo's ports, moved back to the documented ones (for comparing output). */
function asDocumented(text: string, p: Demo['ports']): string {
  return text
    .replaceAll(`localhost:${p.https}`, 'localhost:8443')
    .replaceAll(`localhost:${p.http}`, 'localhost:8080')
    .replaceAll(`127.0.0.1:${p.backend}`, '127.0.0.1:9000');
}

/** The documented ports, moved to the ones this demo listens on. */
function onDemo(text: string, p: Demo['ports']): string {
  return text
    .replaceAll('localhost:8443', `localhost:${p.https}`)
    .replaceAll('localhost:8080', `localhost:${p.http}`)
    .replaceAll('--http-port 8080', `--http-port ${p.http}`)
    .replaceAll('127.0.0.1:9901', `127.0.0.1:${p.admin}`)
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${p.backend}`);
}

test('curl and scan commands run as written against the demo, with the statuses their comments name', async () => {
  const demo = await startDemo();
  try {
    const login = sh(onDemo(`curl -s --cacert certs/root.pem -d '{"code":"docs-commands-test"}' https://localhost:8443/wx/login`, demo.ports));
    const token = (JSON.parse(login.out) as { token: string }).token;
    const seen = new Set<string>();
    for (const cmd of planned('demo')) {
      if (seen.has(cmd.text)) continue;
      seen.add(cmd.text);
      const text = onDemo(cmd.text, demo.ports);
      const r = sh(text, { TOKEN: token });
      assert.equal(r.status, (plan(cmd) as { exit?: number }).exit ?? 0, `${cmd.where}: ${text}\n${r.out}`);
      if (cmd.output) assert.deepEqual(asDocumented(r.out, demo.ports).trimEnd().split('\n'), cmd.output, `${cmd.where}: prints what the docs show`);
      const status = /#\s*(\d{3})\b/.exec(cmd.text)?.[1];
      if (status && cmd.text.startsWith('curl ')) {
        const code = sh(`${text.replace(/\s+#.*$/, '')} -s -o /dev/null -w '%{http_code}'`, { TOKEN: token });
        assert.equal(code.out, status, `${cmd.where}: the comment says ${status}`);
      }
    }
  } finally {
    demo.child.kill('SIGTERM');
    await new Promise((r) => (demo.child.exitCode !== null ? r(undefined) : demo.child.once('exit', r)));
  }
});

/** Text files the docs and the deployment consist of. */
function deployText(): { file: string; text: string }[] {
  const files = [...DOCS, 'certs/README.md', 'docker-compose.yml', 'docker/Dockerfile', ...readdirSync(join(repoRoot, 'docker/k8s')).map((f) => `docker/k8s/${f}`)];
  return files.map((file) => ({ file, text: readFileSync(join(repoRoot, file), 'utf8') }));
}

test('docs and deployment files name one image tag, the package version, and signal compose through its service', () => {
  const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const tags = new Map<string, string[]>();
  for (const { file, text } of deployText()) {
    for (const m of text.matchAll(/(?:image:\s*|-t\s+|\s)(wxgw(?::[\w.-]+)?)(?=[\s`"']|$)/gm)) {
      const tag = m[1]!;
      if (!/^-t|image:/.test(m[0].trim()) && !tag.includes(':')) continue; // the word wxgw, not an image
      tags.set(tag, [...(tags.get(tag) ?? []), file]);
    }
    // docker-compose names its container <project>-<service>-1; `docker kill wxgw` finds nothing.
    assert.doesNotMatch(text, /docker kill /, `${file}: use \`docker compose kill -s HUP wxgw\``);
    for (const line of text.split('\n').filter((l) => l.includes('setfacl'))) {
      assert.match(line, /apt-get install acl/, `${file}: say which package brings setfacl: ${line}`);
    }
  }
  assert.deepEqual([...tags.keys()], [`wxgw:${version}`], JSON.stringify(Object.fromEntries(tags)));
});

test('the logging variables are documented where ops look: README, docs/operations.md and `wxgw start --help`', () => {
  const help = spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'start', '--help'], { encoding: 'utf8' }).stdout;
  for (const [where, text] of [
    ['README.md', readFileSync(join(repoRoot, 'README.md'), 'utf8')],
    ['docs/operations.md', readFileSync(join(repoRoot, 'docs/operations.md'), 'utf8')],
    ['wxgw start --help', help],
  ]) {
    for (const name of ['WXGW_LOG_LEVEL', 'WXGW_LOG_BUFFER']) assert.ok(text!.includes(name), `${where} names ${name}`);
  }
});

test('the recipe for one user\'s openid_hash (docs/operations.md) gives the value the gateway logs', () => {
  const recipe = commands.find((c) => c.text.includes('openssl dgst -sha256 -hmac'));
  assert.ok(recipe, 'the openid_hash recipe is in the docs');
  const key = 'audit-log-key-0123456789abcdef-0123';
  const keyFile = join(mkdtempSync(join(tmpdir(), 'wxgw-docs-')), 'openid_log_key');
  writeFileSync(keyFile, key);
  const openid = 'oAbC1234567890demo0000000001';
  const r = sh(recipe.text.replace('/run/secrets/openid_log_key', keyFile), { OPENID: openid });
  assert.equal(r.status, 0, r.out);
  const logged = openidHash({ openid, snapshot: { policy: { server: { log: { openid_hmac_key: key } } } } } as unknown as RequestState);
  assert.match(logged ?? '', /^[0-9a-f]{64}$/);
  assert.equal(r.out.trim(), logged);
});
