// `npm start`: the embedded default. A local CA chain, the bundled sample legacy backend and the
// gateway with the example policy, all on this machine, with the in-memory store.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseDocument } from 'yaml';
import { PACKAGE_ROOT } from './package-root.js';
import { shownPath } from './shown-path.js';
import { ensureDevChain, type DevChain } from './tls/devchain.js';
import { startGateway } from './main.js';
import { PolicyError, formatDiagnostic } from './types/policy.js';

const BACKEND_PORT = 9000;

/**
 * Ports other than the documented ones, for running the demo beside something that holds them
 * (tests do). The sample backend may ask for 0, any free port: the policy is written after it
 * listens. The gateway's listeners need real numbers, since the redirect names the HTTPS port.
 */
interface PortOverrides {
  https?: number;
  http?: number;
  admin?: number;
  backend?: number;
}

const PORT_VARIABLES = {
  https: 'WXGW_DEMO_HTTPS_PORT',
  http: 'WXGW_DEMO_HTTP_PORT',
  admin: 'WXGW_DEMO_ADMIN_PORT',
  backend: 'WXGW_DEMO_BACKEND_PORT',
} as const;

function portOverrides(env: NodeJS.ProcessEnv): PortOverrides {
  const out: PortOverrides = {};
  for (const [which, name] of Object.entries(PORT_VARIABLES) as [keyof PortOverrides, string][]) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
    const lowest = which === 'backend' ? 0 : 1;
    if (!(port >= lowest && port <= 65535)) throw new Error(`${name}=${text}: expected a port number from ${lowest} to 65535`);
    out[which] = port;
  }
  return out;
}

/**
 * The example policy with other ports, written to a temporary directory. Its relative
 * certificate paths would not resolve from there, so they name the chain's files directly.
 */
function policyWithPorts(example: string, ports: PortOverrides, backendPort: number, chain: DevChain): string {
  const doc = parseDocument(readFileSync(example, 'utf8'));
  const listen = (key: 'https' | 'http' | 'admin', port: number | undefined): void => {
    if (port === undefined) return;
    const host = String(doc.getIn(['server', key, 'listen'])).replace(/:\d+$/, '');
    doc.setIn(['server', key, 'listen'], `${host}:${port}`);
  };
  listen('https', ports.https);
  listen('http', ports.http);
  listen('admin', ports.admin);
  doc.setIn(['upstreams', 'legacy', 'url'], `http://127.0.0.1:${backendPort}`);
  doc.setIn(['wechat', 'api_base'], `http://127.0.0.1:${backendPort}`);
  doc.setIn(['tls', 'roots'], chain.root);
  doc.setIn(['tls', 'certificates', 0, 'cert'], chain.fullchain);
  doc.setIn(['tls', 'certificates', 0, 'key'], chain.key);
  const file = join(mkdtempSync(join(tmpdir(), 'wxgw-demo-')), 'gateway.yaml');
  writeFileSync(file, doc.toString());
  return file;
}

/**
 * The example policy reads its secrets from the environment; the demo fills in what is unset:
 * the sample backend's fake AppSecret, and fresh random keys (tokens end with the process).
 */
function demoEnv(appSecret: string): Record<string, string | undefined> {
  const alnum = (n: number): string => randomBytes(n * 2).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, n);
  return {
    ...process.env,
    WX_APP_SECRET: process.env.WX_APP_SECRET ?? appSecret,
    WX_TOKEN: process.env.WX_TOKEN ?? alnum(32),
    WX_ENCODING_AES_KEY: process.env.WX_ENCODING_AES_KEY ?? alnum(43),
    SESSION_SIGNING_KEY: process.env.SESSION_SIGNING_KEY ?? randomBytes(32).toString('base64'),
  };
}

/** What the demo runs that only a source checkout has: the container image ships neither. */
const CHECKOUT_FILES = ['config/gateway.example.yaml', 'docker/sample-backend/server.mjs'];

export async function runDemo(): Promise<void> {
  const missing = CHECKOUT_FILES.filter((f) => !existsSync(join(PACKAGE_ROOT, f)));
  if (missing.length > 0) throw new Error(`demo needs a source checkout of wxgw; ${missing.join(' and ')} not found under ${PACKAGE_ROOT} (the container image does not ship the demo)`);
  const ports = portOverrides(process.env);
  const chain = await ensureDevChain(join(PACKAGE_ROOT, 'certs'));
  process.stdout.write(
    chain.created
      ? `generated a development chain (root CA -> intermediate -> localhost) in ${shownPath(join(PACKAGE_ROOT, 'certs'))}/\n`
      : `using the development chain in ${shownPath(join(PACKAGE_ROOT, 'certs'))}/\n`,
  );

  const backendModule = pathToFileURL(join(PACKAGE_ROOT, 'docker/sample-backend/server.mjs')).href;
  const { startSampleBackend } = (await import(backendModule)) as {
    startSampleBackend(port: number, host: string): Promise<Server>;
  };
  const backend = await startSampleBackend(ports.backend ?? BACKEND_PORT, '127.0.0.1');
  const backendPort = (backend.address() as AddressInfo).port;
  const { DEMO_APP_SECRET } = (await import(backendModule)) as { DEMO_APP_SECRET: string };

  const example = join(PACKAGE_ROOT, 'config/gateway.example.yaml');
  try {
    const config = Object.keys(ports).length === 0 ? example : policyWithPorts(example, ports, backendPort, chain);
    const gw = await startGateway({ config, env: demoEnv(DEMO_APP_SECRET) });
    // The bundled example policy has its own HTTPS listener.
    const port = gw.https!.port;
    process.stdout.write(
      [
        '',
        `sample legacy backend  http://127.0.0.1:${backendPort}  (reachable directly only from this machine)`,
        `wxgw HTTPS             https://localhost:${port}`,
        gw.http ? `wxgw plain HTTP        http://localhost:${gw.http.port}  (308 redirect to HTTPS)` : 'wxgw plain HTTP        off',
        gw.admin ? `wxgw admin             http://127.0.0.1:${gw.admin.port}/healthz  /readyz` : 'wxgw admin             off',
        config === example ? `policy                 ${shownPath(config)}` : `policy                 ${shownPath(config)}  (${shownPath(example)} with the ports from WXGW_DEMO_*)`,
        `root CA to trust       ${chain.root}`,
        '',
        `try:  curl --cacert ${chain.root} https://localhost:${port}/api/user`,
        `      curl --cacert ${chain.root} -d '{"code":"any-code"}' https://localhost:${port}/wx/login`,
        '',
      ].join('\n'),
    );
    const stop = (): void => {
      void gw.close().then(() =>
        backend.close(() => {
          if (config !== example) rmSync(dirname(config), { recursive: true, force: true });
          process.exit(0);
        }),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    backend.close();
    if (err instanceof PolicyError) {
      for (const d of err.diagnostics) process.stderr.write(formatDiagnostic(d) + '\n');
      process.exit(1);
    }
    throw err;
  }
}
