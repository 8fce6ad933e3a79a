// The differential stand: one real backend (test/helpers/backends.ts) behind the real gateway,
// with a policy that has stricter routes (office-only, identity_required with a per-user limit,
// a signed callback, a GET-only office route, a host-bound office route, a masked route) beside a
// broader catch-all, so that every spelling that escapes a stricter route lands somewhere the
// backend will happily serve.
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { startBackend, type Backend, type BackendKind, type BackendReport } from '../helpers/backends.js';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';
import { wire, type WireAnswer, type WireRequest } from './wire.js';

export const JWT_SECRET = 'differential-jwt-secret-0123456789abcdef';
export const WX_APPID = 'wx5823bf96d3bd56c7';
export const WX_TOKEN = 'diffTok3nForCallbacks';
/** A fixed EncodingAESKey (43 characters, as the WeChat console gives them). */
export const WX_AES_KEY = 'ZGlmZmVyZW50aWFsLWFlcy1rZXktMDEyMzQ1Njc4OWE';
export const WX_APP_SECRET = 'differential-app-secret-0123456789ab';
export const SESSION_SIGNING_KEY = 'differential-session-signing-key-0123456789';
/** The office. The test client (127.0.0.1) is never in it; the trusted proxy 127.0.0.2 may say a client is. */
export const OFFICE = '198.51.100.0/24';
export const PHONE = '13812345678';

export interface PolicyOptions {
  /** Extra lines under `server:` (indented two spaces), e.g. the underscore or semicolon mode. */
  server?: string;
  /** Extra lines of the `personal` mask profile (indented four spaces). */
  maskProfile?: string;
  /** wxgw's own login against a stand-in WeChat, with the backend as `login.upstream`. */
  login?: { apiBase: string; appid: string };
}

/** The standard differential policy in front of `backendUrl`. */
export function differentialPolicy(ctx: PolicyContext, backendUrl: string, opts: PolicyOptions = {}): string {
  return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [127.0.0.2]
${opts.server ?? ''}
${ctx.tlsSection}
wechat:
  appid: ${opts.login?.appid ?? WX_APPID}
  token: \${WX_TOKEN}
  encoding_aes_key: \${WX_AES_KEY}
${opts.login ? `  app_secret: \${WX_APP_SECRET}\n  api_base: "${opts.login.apiBase}"\n` : ''}identity:
  jwt: { secret: "\${JWT_SECRET}", algorithms: [HS256] }
${opts.login ? '  login: { path: /wx/login, upstream: { upstream: legacy, path: /api/users/login } }\n  session: { signing_key: "${SESSION_SIGNING_KEY}" }\n' : ''}ip_lists:
  office: [${OFFICE}]
mask_profiles:
  personal:
    drop: [session_key]
    partial:
      phone: { keep_start: 3, keep_end: 4 }
    detect: [cn_mobile]
${opts.maskProfile ?? ''}
defaults:
  allow: any
upstreams:
  legacy: { url: "${backendUrl}", timeout: 5s }
routes:
  - name: internal
    match: { path_prefix: /api/internal/ }
    upstream: legacy
    allow: [office]
  - name: me
    match: { path_prefix: /api/me/ }
    upstream: legacy
    identity_required: true
    rate_limit: { key: openid, limit: 2, window: 1h, fallback_key: ip }
  - name: reports
    match: { path_prefix: /reports/, methods: [GET] }
    upstream: legacy
    allow: [office]
  - name: public-get
    match: { path_prefix: /pub/, methods: [GET] }
    upstream: legacy
  - name: public-post
    match: { path_prefix: /pub/, methods: [POST] }
    upstream: legacy
  - name: wx-callback
    match: { path: /wx/callback, methods: [GET, POST] }
    upstream: legacy
    wechat_callback: { decrypt: false }
    rate_limit: off
  - name: wx-safe
    match: { path: /wx/safe, methods: [POST] }
    upstream: legacy
    wechat_callback: { decrypt: true }
    rate_limit: off
  - name: masked
    match: { path_prefix: /mask/ }
    upstream: legacy
    mask: personal
  - name: admin-host
    match: { path_prefix: /, host: admin.example.com }
    upstream: legacy
    allow: [office]
  - name: catch-all
    match: { path_prefix: / }
    upstream: legacy
`;
}

export interface Stand {
  kind: BackendKind;
  backend: Backend;
  gateway: TestGateway;
  /** One raw request over real TLS to the gateway. */
  send(req: WireRequest | string): Promise<WireAnswer>;
  /** The same request sent to the backend directly: what it does when nothing is in front. */
  direct(req: WireRequest | string): Promise<WireAnswer>;
  /** What the backend handled while `fn` ran. */
  during(fn: () => Promise<unknown>): Promise<BackendReport[]>;
  close(): Promise<void>;
}

export async function startStand(kind: BackendKind, opts: PolicyOptions = {}): Promise<Stand> {
  const backend = await startBackend(kind);
  let gateway: TestGateway;
  try {
    gateway = await startTestGateway((ctx) => differentialPolicy(ctx, backend.url, opts), {
      env: { JWT_SECRET, WX_TOKEN, WX_AES_KEY, WX_APP_SECRET, SESSION_SIGNING_KEY },
    });
  } catch (err) {
    await backend.close();
    throw err;
  }
  const send = (req: WireRequest | string) => wire(gateway.port, gateway.ca, typeof req === 'string' ? { target: req } : req);
  return {
    kind,
    backend,
    gateway,
    send,
    direct: (req) => wire(backend.port, null, typeof req === 'string' ? { target: req } : req),
    async during(fn) {
      const before = backend.seen().length;
      await fn();
      return backend.seen().slice(before);
    },
    async close() {
      await gateway.close();
      await backend.close();
    },
  };
}

/** A session token of the policy's `identity.jwt` for `openid`. */
export function tokenFor(openid: string): Promise<string> {
  return new SignJWT({ openid })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

/** The query of a correctly signed plain-mode WeChat push. */
export function signedPushQuery(nonce = String(100_000_000 + Math.floor(Math.random() * 900_000_000))): string {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = wechatSignature([WX_TOKEN, timestamp, nonce]);
  return `signature=${signature}&timestamp=${timestamp}&nonce=${nonce}`;
}

/** A gateway refusal: the status, a JSON error and, when given, its stable reason. */
export function assertRefused(res: WireAnswer, status: number, reason?: string, what = ''): void {
  assert.equal(res.status, status, `${what}${what ? ': ' : ''}expected ${status}${reason ? ` ${reason}` : ''}, got ${res.status}: ${res.text.slice(0, 160)}`);
  const body = res.json<{ error?: { reason?: unknown } }>();
  assert.equal(typeof body.error?.reason, 'string', res.text);
  if (reason) assert.equal(body.error!.reason, reason, res.text);
}

/** The backend's report in a gateway answer that passed (the apps answer what they logged). */
export function reportOf(res: WireAnswer): BackendReport {
  assert.equal(res.status, 200, res.text);
  return res.json<BackendReport>();
}
