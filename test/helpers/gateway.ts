// Starts the real gateway in this process from a policy written to a temporary directory, with a
// generated root -> intermediate -> leaf chain for localhost, and captures its log lines.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ensureDevChain, type DevChain } from '../../gateway/tls/devchain.js';
import { startGateway, type GatewayHandle } from '../../gateway/main.js';
import { createLogger } from '../../gateway/observability/logger.js';
import { freePort, isAddressInUse } from './ports.js';
import { waitUntil } from './wait.js';

export interface PolicyContext {
  dir: string;
  chain: DevChain;
  httpsPort: number;
  httpPort: number;
  adminPort: number;
  /** The `tls:` section for the generated chain, indented for the top level. */
  tlsSection: string;
}

export interface TestGateway {
  gw: GatewayHandle;
  ctx: PolicyContext;
  ca: Buffer;
  /** The listener that serves traffic: HTTPS, or plain HTTP with `server.https: off`. */
  port: number;
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[];
  /** The raw log text, for asserting that something never appears in it. */
  logText(): string;
  /** Resolves with the first log line (already written or still to come) that matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

let sharedChain: Promise<DevChain> | undefined;

/** One chain per test process: generating RSA keys is the slowest part of a start. */
export function testChain(): Promise<DevChain> {
  sharedChain ??= ensureDevChain(mkdtempSync(join(tmpdir(), 'wxgw-chain-')));
  return sharedChain;
}

export async function policyContext(): Promise<PolicyContext> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-test-'));
  const chain = await testChain();
  return {
    dir,
    chain,
    httpsPort: await freePort(),
    httpPort: await freePort(),
    adminPort: await freePort(),
    tlsSection: ['tls:', `  roots: ${chain.root}`, '  certificates:', `    - { cert: ${chain.fullchain}, key: ${chain.key} }`].join('\n'),
  };
}

/** Starts again with fresh ports when one was taken between choosing it and listening (ports.ts). */
const START_ATTEMPTS = 3;

export async function startTestGateway(
  policy: (ctx: PolicyContext) => string,
  opts: { env?: Record<string, string | undefined>; now?: () => number } = {},
): Promise<TestGateway> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(policy, opts);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !isAddressInUse(err)) throw err;
    }
  }
}

async function startOnce(policy: (ctx: PolicyContext) => string, opts: { env?: Record<string, string | undefined>; now?: () => number }): Promise<TestGateway> {
  const ctx = await policyContext();
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx));
  const chunks: string[] = [];
  const written = new Set<() => void>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      for (const wake of written) wake();
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const gw = await startGateway({ config: file, logger, ...(opts.env && { env: opts.env }), ...(opts.now && { now: opts.now }) });
  const text = (): string => chunks.join('');
  const lines = (): Record<string, unknown>[] =>
    text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    gw,
    ctx,
    ca: readFileSync(ctx.chain.root),
    port: (gw.https ?? gw.http!).port,
    get logs() {
      return lines();
    },
    logText: text,
    waitForLog: (match, what) => waitUntil(() => lines().find(match), what, { wake: written, describe: text }),
    close: () => gw.close(),
  };
}
