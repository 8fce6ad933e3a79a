// A real HTTP server speaking WeChat's jscode2session protocol, warts included: errors come as
// HTTP 200 with `{errcode, errmsg}` and every answer is labelled text/plain.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitUntil } from './wait.js';

export type FakeCodeAnswer =
  | { openid: string; session_key: string; unionid?: string }
  | { errcode: number; errmsg: string }
  /** Sent verbatim, for answers WeChat should never give. */
  | { raw: string; status?: number };

export interface FakeWechatOptions {
  appid?: string;
  secret?: string;
  /** Path the API lives under, e.g. `/wxapi`; `url` then ends with it. */
  prefix?: string;
}

export interface FakeWechat {
  /** Base URL to put in `wechat.api_base`. */
  url: string;
  appid: string;
  secret: string;
  calls: { path: string; query: Record<string, string> }[];
  codes: Map<string, FakeCodeAnswer>;
  /** Later answers wait until release(): a WeChat that is slow for exactly as long as a test needs. */
  hold(): void;
  /** Sends every held answer and stops holding. */
  release(): void;
  /** Resolves once `count` calls in all have arrived. */
  waitForCalls(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeWechat(opts: FakeWechatOptions = {}): Promise<FakeWechat> {
  const appid = opts.appid ?? 'wx0123456789abcdef';
  const secret = opts.secret ?? 'fake-app-secret-0123456789abcdef';
  const prefix = (opts.prefix ?? '').replace(/\/+$/, '');
  const calls: FakeWechat['calls'] = [];
  const codes = new Map<string, FakeCodeAnswer>();
  const used = new Set<string>();
  const held: (() => void)[] = [];
  const arrived = new Set<() => void>();
  let holding = false;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    calls.push({ path: url.pathname, query });
    for (const wake of arrived) wake();

    const answer = (): { status: number; body: string } => {
      const error = (errcode: number, errmsg: string) => ({ status: 200, body: JSON.stringify({ errcode, errmsg: `${errmsg}, rid: fake` }) });
      if (req.method !== 'GET' || url.pathname !== `${prefix}/sns/jscode2session`) return { status: 404, body: 'not found' };
      if (query.appid !== appid) return error(40013, 'invalid appid');
      if (query.secret !== secret) return error(40125, 'invalid appsecret');
      if (query.grant_type !== 'authorization_code') return error(40002, 'invalid grant_type');
      const code = query.js_code;
      if (!code) return error(41008, 'missing code');
      const configured = codes.get(code);
      if (!configured) return error(40029, 'invalid code');
      if ('raw' in configured) return { status: configured.status ?? 200, body: configured.raw };
      if ('errcode' in configured) return { status: 200, body: JSON.stringify(configured) };
      if (used.has(code)) return error(40163, 'code been used');
      used.add(code);
      return { status: 200, body: JSON.stringify(configured) };
    };

    const send = () => {
      const { status, body } = answer();
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (holding) held.push(send);
    else send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    appid,
    secret,
    calls,
    codes,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const send of held.splice(0)) send();
    },
    waitForCalls: (count) => waitUntil(() => (calls.length >= count ? true : undefined), `${count} calls to the fake WeChat`, { wake: arrived }).then(() => undefined),
    close: () =>
      new Promise<void>((resolve) => {
        held.length = 0;
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
