// What `wxgw scan` is pointed at in the tests: a legacy backend that gets every pattern wrong
// (served over HTTPS with a leaf-only chain, TLS 1.0 allowed, plain HTTP open, no HSTS, CORS
// reflecting any origin with credentials, session_key/unionid/phone in its JSON, a callback that
// takes anything, no limit, and `_` folded into `-` in header names the way CGI does), every
// request counted; and `runScan`, the built CLI as a child process that does not block the
// servers of the test process.
import { spawn } from 'node:child_process';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeChain } from './chain.js';
import { repoRoot } from './process.js';

/** Where the leaf says its (unserved) intermediate can be fetched; the scanner names it. */
export const CA_ISSUERS_URI = 'http://pki.example.test/intermediate.crt';

export const LEAKED = {
  session_key: 'tiihtNczf5v6AKRyjwEUhQ==',
  unionid: 'uDeF0987654321demo0000000001',
  phone: '13812345678',
};

/** Set by `?inject` tests: a string the backend puts in its answers, to see it escaped in reports. */
export const INJECTED = '<script>alert("wxgw")</script>';

export function legacyHandler(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://backend');
  const origin = req.headers.origin;
  const cors: Record<string, string> = origin ? { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true' } : {};
  // The body is never needed; answering without waiting for it also works behind startUpstream,
  // which has read it already.
  req.resume();
  if (url.pathname === '/wx/callback') {
    const echostr = url.searchParams.get('echostr');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(req.method === 'GET' && echostr ? echostr : `success ${INJECTED}`);
    return;
  }
  if (url.pathname === '/api/user') {
    // CGI-style: X_WX_OpenID arrives as HTTP_X_WX_OPENID, the same variable as X-WX-OpenID.
    const openid = req.headers['x-wx-openid'] ?? req.headers['x_wx_openid'] ?? 'oAbC1234567890demo0000000001';
    const text = JSON.stringify({ code: 0, data: { openid, nickname: 'Demo User', ...LEAKED, address: { city: 'Shenzhen' } } });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', ...cors });
    res.end(req.method === 'HEAD' ? undefined : text);
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json', ...cors });
  res.end(JSON.stringify({ code: 404 }));
}

export interface LegacyTarget {
  httpsPort: number;
  httpPort: number;
  root: string;
  /** Requests each listener received, and TCP connections to the HTTPS port. */
  counts: { https: number; http: number; connections: number };
  close(): Promise<void>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * The non-compliant backend on HTTPS and plain HTTP. `plain` answers the plain-HTTP port
 * (default: the same legacy answers, no redirect).
 */
export async function startLegacyTarget(opts: { plain?: (req: IncomingMessage, res: ServerResponse) => void; https?: (req: IncomingMessage, res: ServerResponse) => void } = {}): Promise<LegacyTarget> {
  const chain = await makeChain({ problem: 'leaf-only', cn: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], caIssuers: CA_ISSUERS_URI });
  const counts = { https: 0, http: 0, connections: 0 };
  const tlsServer = createHttps(
    { cert: await readFile(chain.cert), key: await readFile(chain.key), minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' },
    (req, res) => {
      counts.https++;
      (opts.https ?? legacyHandler)(req, res);
    },
  );
  tlsServer.on('connection', () => counts.connections++);
  const plainServer = createHttp((req, res) => {
    counts.http++;
    (opts.plain ?? legacyHandler)(req, res);
  });
  const [httpsPort, httpPort] = [await listen(tlsServer), await listen(plainServer)];
  return {
    httpsPort,
    httpPort,
    root: chain.root,
    counts,
    async close() {
      tlsServer.closeAllConnections();
      plainServer.closeAllConnections();
      await Promise.all([new Promise((r) => tlsServer.close(r)), new Promise((r) => plainServer.close(r))]);
    },
  };
}

export interface ScanRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runScan(args: string[], env: Record<string, string | undefined> = {}): Promise<ScanRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'scan', ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: '1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

export interface JsonFinding {
  rule: string;
  pattern: number;
  level: 'error' | 'warning' | 'note' | 'pass';
  message: string;
  evidence: string[];
  location: { file: string; line: number; col: number } | null;
  url: string | null;
}

export interface JsonReport {
  result: 'pass' | 'fail';
  requests: { http: number; tls: number; cap: number; capped: boolean } | null;
  findings: JsonFinding[];
}
