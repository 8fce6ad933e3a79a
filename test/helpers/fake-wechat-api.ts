// A real HTTP server speaking WeChat's server API protocol around the access_token, as documented:
//   POST /cgi-bin/stable_token  normal mode: the same token while it lives, a new one only in its
//                               last five minutes (the old one stays valid until its end);
//                               force_refresh: a new token, the previous one invalid after `forceGraceMs`
//   GET  /cgi-bin/token         a new token each call, every earlier one from it invalid (isolated
//                               from stable_token's)
//   any other path              40001 without a valid access_token, 45009 past its quota, scripted
//                               answers (-1, 45011, ...), held (slow) answers; otherwise errcode 0
//   POST /wxa/business/getuserphonenumber  {code} -> phone_info in its real shape, 40029 for an unknown code
// Errors come as HTTP 200 `{errcode, errmsg}`, labelled text/plain as WeChat does. Time is the
// test's clock, so expiry is driven without sleeping. `apps` adds further accounts (appid and
// secret), each with tokens of its own; every call records the appid its token belongs to.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const LIFETIME_S = 7200;
const RENEW_WINDOW_MS = 5 * 60_000;

export interface FakeApiCall {
  method: string;
  path: string;
  /** The access_token the call carried ('' without one). */
  token: string;
  query: Record<string, string>;
  body: string;
  /** What the fake answered: its errcode (0 for success). */
  errcode: number;
  /** The app the token was issued to ('' for none valid). */
  appid: string;
  headers: import('node:http').IncomingHttpHeaders;
}

export interface PhoneFixture {
  phoneNumber: string;
  purePhoneNumber: string;
  countryCode: string;
  /** watermark.appid; the fake's appid by default. */
  appid?: string;
}

export interface FakeWechatApi {
  url: string;
  appid: string;
  secret: string;
  /** stable_token requests, with their force_refresh flag. */
  stableRequests: { force: boolean; at: number }[];
  plainRequests: number;
  calls: FakeApiCall[];
  /** Every token the fake ever issued, to check none leaks into logs or metrics. */
  issued: string[];
  /** Daily quota by API path: past it every call answers 45009. */
  quotas: Map<string, number>;
  /** Answers given, in order, to the next calls of a path, instead of success. */
  script: Map<string, { errcode: number; errmsg: string }[]>;
  phones: Map<string, PhoneFixture>;
  /** The current stable token (undefined before the first request). */
  stableToken(): string | undefined;
  /** The current stable token of one of the apps (the default one included). */
  stableTokenOf(appid: string): string | undefined;
  /** stable_token requests by appid. */
  stableRequestsOf(appid: string): number;
  /** Makes API calls refuse a token at once while stable_token's normal mode still hands it out. */
  revoke(token: string): void;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

interface Issued {
  token: string;
  expiresAt: number;
  /** Invalid from this moment (a forced refresh replaced it), or never. */
  revokedAt: number;
}

export async function startFakeWechatApi(opts: { now: () => number; appid?: string; secret?: string; forceGraceMs?: number; apps?: { appid: string; secret: string }[] }): Promise<FakeWechatApi> {
  const now = opts.now;
  const appid = opts.appid ?? 'wx0123456789abcdef';
  const secret = opts.secret ?? 'fake-app-secret-for-egress-0123456789';
  const grace = opts.forceGraceMs ?? 0;
  let seq = 0;
  const secrets = new Map([[appid, secret], ...(opts.apps ?? []).map((a) => [a.appid, a.secret] as const)]);
  const stableBy = new Map([...secrets.keys()].map((id) => [id, [] as Issued[]]));
  const stable = stableBy.get(appid)!;
  const plainBy = new Map<string, Issued>();
  const stableCount = new Map<string, number>();
  const used = new Map<string, number>();
  const held: (() => void)[] = [];
  let holding = false;
  const rejected = new Set<string>();

  const api: FakeWechatApi = {
    url: '',
    appid,
    secret,
    stableRequests: [],
    plainRequests: 0,
    calls: [],
    issued: [],
    quotas: new Map(),
    script: new Map(),
    phones: new Map(),
    stableToken: () => stable.at(-1)?.token,
    stableTokenOf: (id) => stableBy.get(id)?.at(-1)?.token,
    stableRequestsOf: (id) => stableCount.get(id) ?? 0,
    revoke(token) {
      rejected.add(token);
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const send of held.splice(0)) send();
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const issue = (): Issued => {
    const t = { token: `fake-access-token-${++seq}-${Math.random().toString(36).slice(2, 12)}`, expiresAt: now() + LIFETIME_S * 1000, revokedAt: Infinity };
    api.issued.push(t.token);
    return t;
  };
  /** The app a token is valid for, '' when it is valid for none. */
  const ownerOf = (token: string): string => {
    const t = now();
    if (rejected.has(token)) return '';
    for (const [id, issued] of stableBy) {
      const plain = plainBy.get(id);
      if (issued.some((s) => s.token === token && t < s.expiresAt && t < s.revokedAt) || (plain !== undefined && plain.token === token && t < plain.expiresAt)) return id;
    }
    return '';
  };

  const answer = (res: import('node:http').ServerResponse, body: Record<string, unknown>): void => {
    const send = (): void => {
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) }).end(text);
    };
    if (holding) held.push(send);
    else send();
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const body = Buffer.concat(chunks).toString('utf8');
      const path = url.pathname;
      if (path === '/cgi-bin/stable_token') {
        let b: Record<string, unknown> = {};
        try {
          b = JSON.parse(body) as Record<string, unknown>;
        } catch {
          answer(res, { errcode: 47001, errmsg: 'data format error' });
          return;
        }
        const force = b.force_refresh === true;
        api.stableRequests.push({ force, at: now() });
        const own = typeof b.appid === 'string' ? secrets.get(b.appid) : undefined;
        if (own === undefined) return answer(res, { errcode: 40013, errmsg: 'invalid appid' });
        stableCount.set(b.appid as string, (stableCount.get(b.appid as string) ?? 0) + 1);
        if (b.secret !== own) return answer(res, { errcode: 40125, errmsg: 'invalid appsecret' });
        const stable = stableBy.get(b.appid as string)!;
        const t = now();
        const current = stable.at(-1);
        if (force && current) current.revokedAt = Math.min(current.revokedAt, t + grace);
        if (force || !current || t >= current.expiresAt || t >= current.revokedAt || current.expiresAt - t <= RENEW_WINDOW_MS) stable.push(issue());
        const live = stable.at(-1)!;
        return answer(res, { access_token: live.token, expires_in: Math.floor((live.expiresAt - t) / 1000) });
      }
      if (path === '/cgi-bin/token') {
        api.plainRequests++;
        const id = url.searchParams.get('appid') ?? '';
        if (secrets.get(id) === undefined || url.searchParams.get('secret') !== secrets.get(id)) return answer(res, { errcode: 40125, errmsg: 'invalid appsecret' });
        const plain = issue();
        plainBy.set(id, plain);
        return answer(res, { access_token: plain.token, expires_in: LIFETIME_S });
      }
      const token = url.searchParams.get('access_token') ?? '';
      const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'access_token'));
      const owner = ownerOf(token);
      const record = (errcode: number): FakeApiCall => {
        const call = { method: req.method ?? '', path, token, query, body, errcode, appid: owner, headers: req.headers };
        api.calls.push(call);
        return call;
      };
      if (owner === '') {
        record(40001);
        return answer(res, { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' });
      }
      const scripted = api.script.get(path)?.shift();
      if (scripted) {
        record(scripted.errcode);
        return answer(res, scripted);
      }
      const quota = api.quotas.get(path);
      const count = (used.get(path) ?? 0) + 1;
      if (quota !== undefined && count > quota) {
        record(45009);
        return answer(res, { errcode: 45009, errmsg: 'reach max api daily quota limit' });
      }
      used.set(path, count);
      if (path === '/wxa/business/getuserphonenumber') {
        let code: unknown;
        try {
          code = (JSON.parse(body) as Record<string, unknown>).code;
        } catch {
          // an unparsable body is an invalid code below
        }
        const phone = typeof code === 'string' ? api.phones.get(code) : undefined;
        if (!phone) {
          record(40029);
          return answer(res, { errcode: 40029, errmsg: 'invalid code' });
        }
        api.phones.delete(code as string);
        record(0);
        return answer(res, {
          errcode: 0,
          errmsg: 'ok',
          phone_info: {
            phoneNumber: phone.phoneNumber,
            purePhoneNumber: phone.purePhoneNumber,
            countryCode: phone.countryCode,
            watermark: { timestamp: Math.floor(now() / 1000), appid: phone.appid ?? appid },
          },
        });
      }
      record(0);
      return answer(res, { errcode: 0, errmsg: 'ok', path, method: req.method, query, body });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
