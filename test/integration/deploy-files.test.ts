// The deployment files (docker/Dockerfile, docker-compose.yml, docker/k8s/*) checked without a
// container engine: everything they reference exists, they run the CLI as it is spelled, they
// publish the policy's listeners and nothing else, the orchestrators wait out the policy's drain
// before SIGKILL, and the policy they ship loads for real.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadPolicy } from '../../gateway/policy/load.js';
import { PolicyError, type Diagnostic, type PolicyConfig } from '../../gateway/types/policy.js';
import { ensureDevChain } from '../../gateway/tls/devchain.js';
import { loadCertificates } from '../../gateway/tls/load.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

const POLICY = 'config/gateway.docker.yaml';
const POLICY_IN_CONTAINER = '/etc/wxgw/gateway.yaml';
const START = ['start', '--config', POLICY_IN_CONTAINER];
const BACKEND_PORT = 9000;

// Loose shapes of the parts of compose and Kubernetes documents these checks read.
interface ComposeService {
  build?: { context: string; dockerfile: string };
  command?: string[];
  ports?: string[];
  volumes?: string[];
  env_file?: string;
  read_only?: boolean;
  healthcheck?: { test: string[] };
  depends_on?: string[] | Record<string, unknown>;
  stop_grace_period?: string;
}
interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  name: string;
  args?: string[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
}
interface ProjectedSource {
  configMap?: { name: string; items: { key: string; path: string }[] };
  secret?: { name: string; items: { key: string; path: string }[] };
}
interface Deployment {
  spec: {
    template: {
      spec: {
        terminationGracePeriodSeconds?: number;
        containers: Container[];
        volumes: { name: string; projected?: { sources: ProjectedSource[] } }[];
      };
    };
  };
}
interface Service {
  spec: { ports: { port: number; targetPort: string | number }[] };
}

const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };
const deployment = parse(read('docker/k8s/deployment.yaml')) as Deployment;
const service = parse(read('docker/k8s/service.yaml')) as Service;
const configMap = parse(read('docker/k8s/configmap.yaml')) as { data: Record<string, string> };
const podSpec = deployment.spec.template.spec;
const sidecar = podSpec.containers.find((c) => c.name === 'wxgw');

/** Dockerfile instructions with continuation lines joined, grouped by stage. */
function dockerfileStages(): { keyword: string; args: string }[][] {
  const stages: { keyword: string; args: string }[][] = [];
  const lines = read('docker/Dockerfile')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}
const stages = dockerfileStages();
const instructions = stages.flat();
const runtime = stages.at(-1) ?? [];
const argsOf = (keyword: string): string[] => instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

/** Resolves a named container port (as Services and probes use them) to its number. */
function portNumber(port: string | number): number {
  if (typeof port === 'number') return port;
  const named = sidecar?.ports?.find((p) => p.name === port);
  assert.ok(named, `container port named ${port} is declared on the wxgw container`);
  return named.containerPort;
}

/** The container side of a compose `ports` entry such as "443:8443" or "127.0.0.1:80:8080/tcp". */
const composeContainerPort = (entry: string): number => Number(entry.split(':').at(-1)?.split('/')[0]);

let dir: string;
let config: PolicyConfig;
let warnings: Diagnostic[];
let ports: { https: number; http: number; admin: number };

before(async () => {
  // The policy's paths are relative to its directory, so it goes where certs/ sits beside it,
  // as in the containers' /etc/wxgw.
  dir = mkdtempSync(join(tmpdir(), 'wxgw-deploy-'));
  await ensureDevChain(join(dir, 'certs'));
  copyFileSync(join(root, POLICY), join(dir, 'gateway.yaml'));
  ({ config, warnings } = await loadPolicy(join(dir, 'gateway.yaml'), { env: { WXGW_UPSTREAM_URL: 'http://backend:9000', WXGW_REDIS_URL: 'redis://redis:6379' } }));
  const { https, http, admin } = config.server;
  assert.ok(https && http && admin, 'the container policy has https, http and admin listeners');
  ports = { https: https.listen.port, http: http.listen.port, admin: admin.listen.port };
});
after(() => rm(dir, { recursive: true, force: true }));

test('the container policy validates through the real loader, certificates included', () => {
  assert.deepEqual(
    warnings.map((w) => w.path),
    ['server.admin.listen'],
    'the only warning is the admin listener beyond loopback, which the probes need',
  );
  assert.equal(config.upstreams.get('legacy')?.url.href, 'http://backend:9000/');
  const { certificates, diagnostics } = loadCertificates(config.tls);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  assert.equal(certificates.length, 1);
  assert.deepEqual(ports, { https: 8443, http: 8080, admin: 9901 });
});

test('the policy needs WXGW_UPSTREAM_URL and WXGW_REDIS_URL, which .env.example defines and .env stays out of git', async () => {
  for (const name of ['WXGW_UPSTREAM_URL', 'WXGW_REDIS_URL']) {
    await assert.rejects(
      loadPolicy(join(dir, 'gateway.yaml'), { env: {} }),
      (err) => err instanceof PolicyError && err.diagnostics.some((d) => d.message.includes(name)),
    );
  }
  assert.match(read('.env.example'), /^WXGW_UPSTREAM_URL=http:\/\/backend:9000$/m);
  assert.match(read('.env.example'), /^WXGW_REDIS_URL=redis:\/\/redis:6379$/m);
  assert.equal(config.store.kind, 'redis');
  const ignored = spawnSync('git', ['check-ignore', '-q', '.env'], { cwd: root });
  assert.equal(ignored.status, 0, '.env is git-ignored');
});

test('the ConfigMap carries exactly config/gateway.docker.yaml', () => {
  assert.equal(configMap.data['gateway.yaml'], read(POLICY));
});

test('every file the Dockerfile and compose reference exists in the repository', () => {
  const copied = runtime
    .concat(stages[0] ?? [])
    .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  assert.ok(copied.length > 0);
  const ignored = read('.dockerignore')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'));
  for (const source of copied) {
    assert.ok(existsSync(join(root, source)), `COPY ${source} exists`);
    assert.ok(!ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)), `.dockerignore keeps ${source}`);
  }
  for (const kept of ['node_modules', 'dist', 'certs', '.git']) assert.ok(ignored.includes(kept), `.dockerignore lists ${kept}`);

  const wxgw = compose.services.wxgw;
  assert.ok(wxgw?.build);
  assert.ok(existsSync(join(root, wxgw.build.context, wxgw.build.dockerfile)));
  assert.equal(wxgw.env_file, '.env');
  for (const [name, svc] of Object.entries(compose.services)) {
    for (const volume of svc.volumes ?? []) {
      const source = volume.split(':')[0] ?? '';
      // certs/ is git-ignored and generated by the demo; its README is what the repository holds.
      const present = source === './certs' ? join(root, 'certs/README.md') : join(root, source);
      assert.ok(existsSync(present), `${name} volume ${source} exists`);
    }
  }
});

test('compose, the image and the k8s sidecar start the gateway as the CLI spells it', () => {
  // The CLI's own usage text: `start --config FILE`.
  assert.match(read('gateway/cli/usage.ts'), /^\s+start\s+--config FILE\s/m);
  assert.deepEqual(JSON.parse(argsOf('ENTRYPOINT')[0] ?? ''), ['node', '/app/bin/wxgw.js']);
  assert.deepEqual(JSON.parse(argsOf('CMD')[0] ?? ''), START);
  assert.deepEqual(compose.services.wxgw?.command, START);
  assert.deepEqual(sidecar?.args, START);
  assert.ok(compose.services.wxgw?.volumes?.includes(`./${POLICY}:${POLICY_IN_CONTAINER}:ro`));
  assert.ok(compose.services.wxgw?.volumes?.includes('./certs:/etc/wxgw/certs:ro'));
  assert.equal(compose.services.wxgw?.read_only, true);
});

test('only the policy\'s HTTPS and HTTP listeners are published; never the backend or the admin port', () => {
  const published = (compose.services.wxgw?.ports ?? []).map(composeContainerPort).sort();
  assert.deepEqual(published, [ports.http, ports.https].sort());
  for (const [name, svc] of Object.entries(compose.services)) {
    if (name !== 'wxgw') assert.equal(svc.ports, undefined, `${name} publishes nothing`);
  }
  const exposed = argsOf('EXPOSE').flatMap((a) => a.split(/\s+/)).map(Number).sort();
  assert.deepEqual(exposed, [ports.http, ports.https, ports.admin].sort());

  const targets = service.spec.ports.map((p) => portNumber(p.targetPort)).sort();
  assert.deepEqual(targets, [ports.http, ports.https].sort());
  for (const p of service.spec.ports) {
    assert.ok(![BACKEND_PORT, ports.admin].includes(p.port), `Service port ${p.port}`);
  }
});

test('health checks and probes use /healthz and /readyz on the policy\'s admin port', () => {
  const healthz = `http://127.0.0.1:${ports.admin}/healthz`;
  assert.ok(argsOf('HEALTHCHECK')[0]?.includes(healthz), 'Dockerfile HEALTHCHECK');
  assert.ok(compose.services.wxgw?.healthcheck?.test.join(' ').includes(healthz), 'compose healthcheck');
  assert.equal(sidecar?.livenessProbe?.httpGet.path, '/healthz');
  assert.equal(portNumber(sidecar?.livenessProbe?.httpGet.port ?? ''), ports.admin);
  assert.equal(sidecar?.readinessProbe?.httpGet.path, '/readyz');
  assert.equal(portNumber(sidecar?.readinessProbe?.httpGet.port ?? ''), ports.admin);
});

test('the k8s sidecar is locked down and finds the policy and certificates where it expects them', () => {
  const sc = sidecar?.securityContext;
  assert.equal(sc?.runAsNonRoot, true);
  assert.equal(sc?.runAsUser, 10001);
  assert.equal(sc?.readOnlyRootFilesystem, true);
  assert.equal(sc?.allowPrivilegeEscalation, false);
  assert.ok(sc?.capabilities?.drop?.includes('ALL'));
  assert.ok(sidecar?.resources?.requests && sidecar.resources.limits);

  const mount = sidecar?.volumeMounts?.find((m) => m.mountPath === '/etc/wxgw');
  assert.equal(mount?.readOnly, true);
  const sources = podSpec.volumes.find((v) => v.name === mount?.name)?.projected?.sources ?? [];
  const paths = new Map(
    sources.flatMap((s) => (s.configMap ?? s.secret)?.items.map((i) => [i.path, i.key] as const) ?? []),
  );
  assert.equal(paths.get('gateway.yaml'), 'gateway.yaml');
  // The loaded policy's absolute paths, made relative to its directory as the mount lays them out.
  const relative = (abs: string): string => abs.slice(dir.length + 1);
  const entry = config.tls.certificates[0];
  assert.ok(entry && config.tls.roots !== 'system');
  assert.equal(paths.get(relative(entry.cert)), 'tls.crt');
  assert.equal(paths.get(relative(entry.key)), 'tls.key');
  assert.equal(paths.get(relative(config.tls.roots.bundle)), 'ca.crt');
});

test('the Dockerfile is multi-stage and its runtime stage runs as non-root without dev dependencies', () => {
  assert.equal(argsOf('FROM').length, 2);
  // Node.js 24 LTS, pinned by digest, the same base in both stages.
  const froms = argsOf('FROM').map((f) => f.split(/\s+/)[0]);
  for (const from of froms) assert.match(from!, /^node:24-bookworm-slim@sha256:[0-9a-f]{64}$/);
  assert.equal(new Set(froms).size, 1);
  const user = runtime.filter((i) => i.keyword === 'USER').at(-1)?.args ?? '';
  assert.match(user, /^10001(:10001)?$/);
  assert.ok(argsOf('HEALTHCHECK').length === 1);
  const runs = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  assert.ok(runs.some((r) => r.includes('npm ci --omit=dev --ignore-scripts')));
  assert.ok(!runs.some((r) => /npm (install|i)\b/.test(r)), 'no npm install in the runtime stage');
  assert.ok(!runs.some((r) => /npm ci(?![^&]*--omit=dev)/.test(r)), 'every npm ci in the runtime stage omits dev');
});

/** Milliseconds in a compose duration such as `40s`, `1m30s` or `1.5s`. */
function composeDuration(text: string): number {
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us)/g)];
  assert.equal(parts.map((p) => p[0]).join(''), text, `compose duration ${text}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]!]!, 0);
}

/** What SIGKILL must not cut: the drain delay, then shutdown_timeout for requests in flight. */
const MARGIN_MS = 5000;

test('compose and Kubernetes wait out the policy\'s drain_delay + shutdown_timeout before SIGKILL', () => {
  const { drain_delay, shutdown_timeout } = config.server;
  const drain = drain_delay + shutdown_timeout;
  assert.ok(drain_delay > 0, 'the container policy drains before it stops accepting');

  const grace = compose.services.wxgw?.stop_grace_period;
  assert.ok(grace, 'compose sets stop_grace_period for wxgw (its default of 10s would cut the drain)');
  assert.ok(composeDuration(grace) >= drain + MARGIN_MS, `compose stop_grace_period ${grace} covers ${drain} ms and a margin`);

  const seconds = podSpec.terminationGracePeriodSeconds;
  assert.ok(seconds !== undefined, 'the Deployment sets terminationGracePeriodSeconds');
  assert.ok(seconds * 1000 >= drain + MARGIN_MS, `terminationGracePeriodSeconds ${seconds} covers ${drain} ms and a margin`);

  // wxgw relies on drain_delay, not a preStop sleep, whose time would come out of the grace too.
  assert.equal(sidecar?.lifecycle?.preStop, undefined);
  // The app beside it gets SIGTERM at the same moment; it must outlive the delay in which the
  // gateway still takes requests for it.
  const app = podSpec.containers.find((c) => c.name === 'app');
  const sleep = app?.lifecycle?.preStop?.exec?.command;
  assert.equal(sleep?.[0], 'sleep');
  assert.ok(Number(sleep[1]) * 1000 > drain_delay, `the app's preStop sleep ${sleep[1]}s outlasts drain_delay`);
  assert.ok(Number(sleep[1]) < seconds, 'and ends inside the grace period');
});
