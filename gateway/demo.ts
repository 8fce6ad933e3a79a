// `npm start`: the embedded default. A local CA chain, the bundled sample legacy backend and the
// gateway with the example policy, all on this machine, with the in-memory store.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Server } from 'node:http';
import { PACKAGE_ROOT } from './package-root.js';
import { shownPath } from './shown-path.js';
import { ensureDevChain } from './tls/devchain.js';
import { startGateway } from './main.js';
import { PolicyError, formatDiagnostic } from './policy/types.js';

const BACKEND_PORT = 9000;

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

export async function runDemo(): Promise<void> {
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
  const backend = await startSampleBackend(BACKEND_PORT, '127.0.0.1');
  const { DEMO_APP_SECRET } = (await import(backendModule)) as { DEMO_APP_SECRET: string };

  const config = join(PACKAGE_ROOT, 'config/gateway.example.yaml');
  try {
    const gw = await startGateway({ config, env: demoEnv(DEMO_APP_SECRET) });
    // The bundled example policy has its own HTTPS listener.
    const port = gw.https!.port;
    process.stdout.write(
      [
        '',
        `sample legacy backend  http://127.0.0.1:${BACKEND_PORT}  (reachable directly only from this machine)`,
        `wxgw HTTPS             https://localhost:${port}`,
        gw.http ? `wxgw plain HTTP        http://localhost:${gw.http.port}  (308 redirect to HTTPS)` : 'wxgw plain HTTP        off',
        gw.admin ? `wxgw admin             http://127.0.0.1:${gw.admin.port}/healthz  /readyz` : 'wxgw admin             off',
        `policy                 ${shownPath(config)}`,
        `root CA to trust       ${chain.root}`,
        '',
        `try:  curl --cacert ${chain.root} https://localhost:${port}/api/user`,
        `      curl --cacert ${chain.root} -d '{"code":"any-code"}' https://localhost:${port}/wx/login`,
        '',
      ].join('\n'),
    );
    const stop = (): void => {
      void gw.close().then(() => backend.close(() => process.exit(0)));
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
