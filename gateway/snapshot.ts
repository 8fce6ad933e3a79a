// One immutable picture of the policy in force: what request handling reads, built beside the
// old one and swapped by reference.
import { PolicyError, type MaskChoiceConfig, type PolicyConfig, type RouteConfig, type SourcePos, type UpstreamConfig, type WebSocketConfig } from './types/policy.js';
import type { LoadedCertificate } from './tls/load.js';
import { handshakeTls, type HandshakeTls } from './tls/server-options.js';
import { RouteTable, type CompiledRoute } from './net/route-table.js';
import { compileTrustedProxies, type TrustedProxies } from './net/client-address.js';
import { compileGuardChain, type GuardChain } from './guards/chain.js';
import { compileCors } from './guards/cors.js';
import {
  compileHeaderRules,
  compileRequestHeaders,
  securityHeaders,
  stripWith,
  type HeaderRules,
  type RequestHeaderPlan,
  type ResponsePlan,
} from './guards/header-plan.js';
import { compileRouteRules } from './guards/report-mode.js';
import type { CallbackGuard, Seal } from './guards/callback-types.js';
import { compileAsyncDelivery, type AsyncDelivery, type DeliveryIntake } from './guards/async-delivery.js';
import { VERIFIED_HEADER, compileWechatCallback } from './guards/wechat-callback.js';
import { PAY_HEADERS, compileWechatPayNotify } from './guards/wechatpay-notify.js';
import { wechatApp } from './policy/wechat-apps.js';
import { compileMaskProfile } from './masking/compile.js';
import type { CompiledMask } from './masking/compile.js';
import { maskValue } from './masking/json-mask.js';
import { compileLogRedactor, type LogRedactor } from './masking/redact.js';
import { compileMaskSelector, type MaskSelector } from './masking/select.js';
import { selectedClaims } from './policy/mask-choice.js';
import { compileIdentity, type IdentityVerifier } from './identity/verify.js';
import { SessionSigner } from './identity/session-token.js';
import { createLogin, type LoginUpstreamFailure, type LoginUpstreamRequest, type LoginUpstreamResponse } from './identity/login.js';
import { createDecrypt, type Decrypt } from './identity/decrypt.js';
import { openDataView } from './identity/open-data-mask.js';
import { compileRevocation, type Revocation } from './identity/sessions.js';
import { PHONE_HEADERS, createPhone, type PhoneEndpoint, type WechatCaller } from './identity/phone.js';
import type { Store } from './store/store.js';
import type { Logger } from './observability/logger.js';
import { DEFAULTS } from './policy/build.js';
import { loginReport } from './policy/report-mode.js';
import { secretsInForce, type SecretsInForce } from './rotation/in-force.js';
import { systemClock, type RotationClock } from './rotation/versions.js';
import { loadUpstreamTls, type UpstreamTls } from './tls/upstream-client.js';

export interface UpstreamTarget {
  readonly name: string;
  /** Scheme, host and port, e.g. `http://127.0.0.1:9000`. */
  readonly origin: string;
  /** The upstream URL's path without its trailing slash; '' for the root. */
  readonly basePath: string;
  /** Targets, balance, health, limits as the policy gives them. */
  readonly config: UpstreamConfig;
  /** What an https:// upstream's files held, read when this snapshot was built; undefined for http://. */
  readonly tls: UpstreamTls | undefined;
  /**
   * Equal exactly when two snapshots' upstreams may share connections and health state: the
   * same name, settings and TLS files' contents (proxy/upstream-group.ts).
   */
  readonly key: string;
}

/** What an upstream's answer goes through on its way to the client (proxy/answer.ts does it). */
export type AnswerPlan =
  | { kind: 'stream' }
  | { kind: 'mask'; mask: CompiledMask; failOpen: boolean }
  /** The profile in report mode: the answer passes unmasked, and what would have been masked is reported. */
  | { kind: 'mask_report'; mask: CompiledMask }
  | { kind: 'seal'; seal: Seal };

/** A route's answers: one plan for all, or the plan its caller's verified identity picks (`mask: { by }`). */
export type RouteAnswer = AnswerPlan | { kind: 'choose'; choose: MaskSelector<ChosenAnswer> };

/** A choice's plan, and the profile it applies (`off` for none), for the access log. */
export interface ChosenAnswer {
  readonly plan: AnswerPlan;
  readonly profile: string;
}

export interface RouteTarget {
  readonly name: string;
  readonly upstream: UpstreamTarget;
  /** Milliseconds: the route's own timeout or its upstream's. */
  readonly timeout: number;
  /** How answers are rewritten; its `cors` is the route's compiled CORS guard. */
  readonly response: ResponsePlan;
  /** The route's `request_headers`; undefined without any. */
  readonly requestRules?: HeaderRules;
  /** `login`, `decrypt`, `logout`, `phone`: the identity endpoints, answered by the gateway after the route's guards. */
  readonly kind: 'proxy' | 'login' | 'decrypt' | 'logout' | 'phone';
  /** The route's guards in order (allowlist, CORS, signed callback, identity, rate limits). */
  readonly chain: GuardChain;
  /** What the upstream's answer goes through: streamed as it is, or masked by the route's profile. */
  readonly answer: RouteAnswer;
  /** The route's WebSocket limits; undefined: upgrades are refused (proxy/websocket.ts). */
  readonly websocket: WebSocketConfig | undefined;
  /** A callback route with `delivery: async`: verified messages are queued, not forwarded. */
  readonly delivery?: AsyncDelivery;
}

/** What a snapshot's login endpoint does with a request body. */
export type LoginEndpoint = ReturnType<typeof createLogin>;

export interface Snapshot {
  readonly policy: PolicyConfig;
  readonly routes: RouteTable<RouteTarget>;
  readonly trusted: TrustedProxies;
  readonly certificates: readonly LoadedCertificate[];
  /** What the HTTPS listener's handshakes read (SNI selection, default context); undefined without certificates. */
  readonly tls: HandshakeTls | undefined;
  /** Host names a plain-HTTP redirect may point at: the certificates' names and public_host. */
  readonly redirectHosts: ReadonlySet<string>;
  /** HSTS and nosniff, on every HTTPS answer including the gateway's own. */
  readonly securityHeaders: Readonly<Record<string, string>>;
  readonly store: Store;
  /** Verifies identity tokens; undefined without an `identity` section. */
  readonly identity: IdentityVerifier | undefined;
  readonly login: LoginEndpoint | undefined;
  /** `identity.decrypt`; undefined without it. */
  readonly decrypt: Decrypt | undefined;
  /** Ends sessions before their `exp` (`identity.logout`); undefined without it. */
  readonly revocation: Revocation | undefined;
  /** The phone-number endpoint (`identity.phone`), answered by the gateway after the route's guards. */
  readonly phone: PhoneEndpoint | undefined;
  /** How client request headers are screened: names only the gateway states (identity, callback verification), claims, folded spellings. */
  readonly reservedHeaders: RequestHeaderPlan;
  /** What every log line goes through while this snapshot is in force: its profiles' keys and detectors. */
  readonly redactor: LogRedactor;
  /** The rotating secrets with their previous values, carried on to the next snapshot (rotation/in-force.ts). */
  readonly secrets: SecretsInForce;
  /** Releases what the snapshot holds open (the WeChat API client); in-flight calls finish first. */
  dispose(): Promise<void>;
}

/** A buffered call to an upstream that resolves a transport failure to its reason. */
export interface UpstreamCaller {
  call(upstream: UpstreamTarget, req: LoginUpstreamRequest, timeout: number): Promise<LoginUpstreamResponse | LoginUpstreamFailure>;
  /** The upstreams of a snapshot about to be put in force: health checks start, those no longer named stop. */
  use?(upstreams: Iterable<UpstreamTarget>): void;
}

/** What a snapshot is built with that outlives it: shared by every snapshot of one gateway. */
export interface SnapshotDeps {
  readonly store: Store;
  /** The upstream pools (proxy/forwarder.ts), for the one call the gateway makes itself: the login's. */
  readonly pools: UpstreamCaller;
  readonly logger: Logger;
  /** The clock secrets' rotation windows and identity tokens are measured with, and the count of previous values used. */
  readonly rotation?: RotationClock;
  /** WeChat API calls with the shared access_token (the egress), for the phone endpoint; without it there is none. */
  readonly wechat?: WechatCaller;
  /** The queue of `delivery: async` callback routes; needed only by policies that have one. */
  readonly deliveries?: DeliveryIntake;
}

/** Routes compiled between two turns of the event loop: about a millisecond's work. */
const ROUTES_PER_TURN = 200;

function upstreamTarget(u: UpstreamConfig): UpstreamTarget {
  const basePath = u.url.pathname.replace(/\/+$/, '');
  const tls = u.tls && loadUpstreamTls(u.tls);
  const { pos: _pos, tls: _tls, ...settings } = u;
  const key = JSON.stringify([settings, u.tls && { ...u.tls, pos: undefined }, tls?.fingerprint]);
  return Object.freeze({ name: u.name, origin: u.url.origin, basePath, config: u, tls, key });
}

/**
 * Builds one guard, turning a refusal by the library underneath (a key jose or node:crypto will
 * not take) into a policy error at the section that configured it.
 */
async function built<T>(pos: SourcePos, make: () => T | Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new PolicyError([{ severity: 'error', file: pos.file, line: pos.line, col: pos.col, path: pos.path, message }]);
  }
}

/** `before`: the snapshot this one replaces, whose secrets stay accepted for their window when they changed. */
export async function buildSnapshot(policy: PolicyConfig, certificates: readonly LoadedCertificate[], deps: SnapshotDeps, before?: Snapshot): Promise<Snapshot> {
  const clock = deps.rotation ?? systemClock;
  const secrets = secretsInForce(policy, before?.secrets, clock.now());
  const upstreams = new Map<string, UpstreamTarget>();
  for (const [name, u] of policy.upstreams) upstreams.set(name, upstreamTarget(u));

  const security = securityHeaders(policy.tls.hsts);
  const fixed = Object.freeze(Object.entries(security));
  const strip = new Set(policy.server.strip_response_headers);
  const masks = new Map<string, CompiledMask>();
  for (const [name, profile] of policy.mask_profiles) masks.set(name, await built(profile.pos, () => compileMaskProfile(profile)));

  const identity = policy.identity;
  const signer = identity?.session
    ? await built(identity.pos, () => SessionSigner.create(identity.session!, { now: clock.now, versions: secrets.get('identity.session.signing_key'), clock }))
    : undefined;
  const claims = selectedClaims([policy.defaults.mask_by, ...policy.routes.map((r) => r.mask_by)]);
  const revocation = identity?.logout && identity.session ? compileRevocation(deps.store, identity.logout.scope, identity.session.ttl, clock.now) : undefined;
  const verifier = identity
    ? await built(identity.pos, () => compileIdentity(identity, { signer, claims, now: clock.now, ...(revocation && { revocation }) }))
    : undefined;
  const callbacks = new Map<string, CallbackGuard>();
  const onNotify = { apiv3Key: secrets.get('wechatpay.apiv3_key'), clock };
  for (const r of policy.routes) {
    // How long a delivery's upstream request may take: a pending claim outlives it (callback-replay.ts).
    const u = policy.upstreams.get(r.upstream);
    const budget = u && (r.timeout ?? u.timeout) + u.queue_timeout + u.connect_timeout;
    if (r.wechat_callback) {
      // The route's app (wechat.apps, or the default one), with its own secrets in force.
      const { app, secretKey } = wechatApp(policy.wechat!, r.wechat_callback.app);
      const onCallback = { token: secrets.get(secretKey('token')), encodingAesKey: secrets.get(secretKey('encoding_aes_key')), clock };
      callbacks.set(r.name, await built(r.wechat_callback.pos, () => compileWechatCallback(r.wechat_callback!, app, deps.store, undefined, onCallback, budget)));
    }
    else if (r.wechatpay_notify) callbacks.set(r.name, await built(r.wechatpay_notify.pos, () => compileWechatPayNotify(r.wechatpay_notify!, policy.wechatpay!, deps.store, undefined, onNotify, budget)));
  }

  const target = (r: RouteConfig, kind: RouteTarget['kind']): RouteTarget => {
    const upstream = upstreams.get(r.upstream);
    // The validator refuses undefined upstreams; reaching this is a bug, not bad input.
    if (!upstream) throw new Error(`route ${r.name}: upstream ${r.upstream} missing after validation`);
    const timeout = r.timeout ?? policy.upstreams.get(r.upstream)!.timeout;
    const responseRules = compileHeaderRules(r.response_headers, 'response');
    const requestRules = compileHeaderRules(r.request_headers, 'request');
    const rules = compileRouteRules(r, r.cors && compileCors(r.cors));
    const response: ResponsePlan = Object.freeze({
      strip: stripWith(strip, responseRules),
      ...(responseRules && { rules: responseRules }),
      fixed,
      jsonCharset: r.json_charset,
      cors: rules.cors,
      ...(rules.backendCors && { backendCors: true }),
    });
    const mask = r.mask === undefined ? undefined : masks.get(r.mask);
    const failOpen = r.on_mask_error === 'pass';
    const delivery = compileAsyncDelivery(r, r.wechat_callback ? wechatApp(policy.wechat!, r.wechat_callback.app).app : policy.wechat, deps.store, deps.deliveries);
    const chain = compileGuardChain({
      ipAllow: rules.ipAllow,
      cors: response.cors,
      callback: callbacks.get(r.name),
      // The login endpoint is how a caller gets a token; it never asks for one.
      identity: kind === 'login' ? undefined : verifier,
      identityRequired: r.identity_required,
      rateLimit: rules.rateLimit,
      store: deps.store,
      storeFailOpen: policy.store.on_unavailable === 'allow',
      ...(rules.report && { report: rules.report }),
    });
    return Object.freeze({
      name: r.name,
      upstream,
      timeout,
      response,
      ...(requestRules && { requestRules }),
      kind,
      chain,
      // In report mode a choice's dry run uses its strictest profile, what an unknown caller gets.
      answer: !mask
        ? Object.freeze<AnswerPlan>({ kind: 'stream' })
        : r.report?.includes('mask')
          ? Object.freeze<AnswerPlan>({ kind: 'mask_report', mask })
          : r.mask_by
            ? chooseAnswer(r.mask_by, masks, mask, failOpen)
            : Object.freeze<AnswerPlan>({ kind: 'mask', mask, failOpen }),
      websocket: r.websocket && Object.freeze({ ...r.websocket }),
      ...(delivery && { delivery }),
    });
  };
  const routes: CompiledRoute<RouteTarget>[] = [];
  for (const [i, r] of policy.routes.entries()) {
    // A reload builds this while the old snapshot serves: let requests in every few routes.
    if (i % ROUTES_PER_TURN === ROUTES_PER_TURN - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    routes.push({ config: r, target: target(r, 'proxy') });
  }

  let login: LoginEndpoint | undefined;
  if (identity?.login && signer) {
    const config = loginRoute(policy);
    // Listed first: on a tie with a route of the same exact path, the gateway's endpoint wins.
    routes.unshift({ config, target: target(config, 'login') });
    const up = identity.login.upstream;
    const userMask = up && masks.get(up.mask ?? policy.defaults.mask ?? '');
    const userUpstream = up && upstreams.get(up.upstream)!;
    const userTimeout = up && policy.upstreams.get(up.upstream)!.timeout;
    login = createLogin({
      identity,
      wechat: wechatApp(policy.wechat!, identity.login.app).app,
      store: deps.store,
      signer,
      logger: deps.logger,
      requestIdHeader: policy.server.request_id.header,
      ...(up && {
        callUpstream: (req: { path: string; headers: Record<string, string>; body: Buffer }) =>
          deps.pools.call(userUpstream!, { ...req, path: userUpstream!.basePath + up.path }, userTimeout!),
        maskJson: (value: unknown) => (userMask ? maskValue(userMask, value) : value),
      }),
    });
  }

  let decrypt: Decrypt | undefined;
  if (identity?.decrypt && login) {
    const d = identity.decrypt;
    const config = sessionRoute(policy, 'identity-decrypt', d.path, d.upstream.upstream, d.pos);
    routes.unshift({ config, target: target(config, 'decrypt') });
    const dataUpstream = upstreams.get(d.upstream.upstream)!;
    const dataTimeout = policy.upstreams.get(d.upstream.upstream)!.timeout;
    const profile = d.upstream.mask ?? policy.defaults.mask;
    decrypt = createDecrypt({
      decrypt: d,
      identity,
      appid: wechatApp(policy.wechat!, identity.login?.app).app.appid,
      store: deps.store,
      logger: deps.logger,
      now: clock.now,
      callUpstream: (req) => deps.pools.call(dataUpstream, { ...req, path: dataUpstream.basePath + req.path }, dataTimeout),
      maskClient: openDataView(profile === undefined ? undefined : masks.get(profile)),
      requestIdHeader: policy.server.request_id.header,
    });
  }
  if (identity?.logout && revocation) {
    const config = sessionRoute(policy, 'identity-logout', identity.logout.path, policy.upstreams.keys().next().value!, identity.logout.pos);
    routes.unshift({ config, target: target(config, 'logout') });
  }
  let phone: PhoneEndpoint | undefined;
  if (identity?.phone && deps.wechat) {
    // Never forwarded as is: the number goes to identity.phone.upstream.
    const config = sessionRoute(policy, 'identity-phone', identity.phone.path, identity.phone.upstream.upstream, identity.phone.pos);
    routes.unshift({ config, target: target(config, 'phone') });
    const up = identity.phone.upstream;
    const userMask = masks.get(up.mask ?? policy.defaults.mask ?? '');
    const userUpstream = upstreams.get(up.upstream)!;
    const userTimeout = policy.upstreams.get(up.upstream)!.timeout;
    phone = createPhone({
      wechat: policy.wechat!,
      caller: deps.wechat,
      logger: deps.logger,
      requestIdHeader: policy.server.request_id.header,
      callUpstream: (req) => deps.pools.call(userUpstream, { ...req, path: userUpstream.basePath + up.path }, userTimeout),
      maskJson: (value: unknown) => (userMask ? maskValue(userMask, value) : value),
    });
  }

  const redirectHosts = new Set<string>();
  for (const c of certificates) for (const n of c.names) if (!n.startsWith('*.')) redirectHosts.add(n);
  if (policy.server.public_host) redirectHosts.add(policy.server.public_host.toLowerCase());

  const snapshot: Snapshot = Object.freeze({
    policy,
    routes: new RouteTable(routes),
    trusted: compileTrustedProxies(policy.server.trusted_proxies),
    certificates: Object.freeze([...certificates]),
    tls: certificates.length > 0 ? handshakeTls(policy.tls, certificates) : undefined,
    redirectHosts,
    securityHeaders: security,
    store: deps.store,
    identity: verifier,
    login,
    decrypt,
    revocation,
    phone,
    reservedHeaders: compileRequestHeaders({
      underscores: policy.server.headers.underscores,
      // The default names stay reserved when the policy renames them: a backend written for the
      // default still reads X-WX-OpenID, and a client must not be able to set it.
      owned: [
        ...new Set([identity?.upstream_header ?? DEFAULTS.upstream_header, DEFAULTS.upstream_header, identity?.unionid_header ?? DEFAULTS.unionid_header, DEFAULTS.unionid_header]),
        VERIFIED_HEADER,
        ...PAY_HEADERS,
        ...PHONE_HEADERS,
        // The request id header is the gateway's to state (`server.request_id`), in every spelling.
        policy.server.request_id.header,
      ],
      trusted: policy.server.trusted_headers,
      read: identity && 'header' in identity.token ? [identity.token.header] : [],
    }),
    redactor: compileLogRedactor(masks.values()),
    secrets,
    async dispose() {
      login?.close();
    },
  });
  // Last: nothing after it can fail, so health checks never start for a snapshot left unused.
  deps.pools.use?.(upstreams.values());
  return snapshot;
}

/** Every choice's plan built once, shared by the requests it applies to. */
function chooseAnswer(cfg: MaskChoiceConfig, masks: ReadonlyMap<string, CompiledMask>, strictest: CompiledMask, failOpen: boolean): RouteAnswer {
  const plans = new Map<string, ChosenAnswer>();
  const plan = (profile: string): ChosenAnswer => {
    let chosen = plans.get(profile);
    if (!chosen) {
      const mask = profile === 'off' ? undefined : masks.get(profile)!;
      chosen = Object.freeze({ plan: Object.freeze<AnswerPlan>(mask ? { kind: 'mask', mask, failOpen } : { kind: 'stream' }), profile });
      plans.set(profile, chosen);
    }
    return chosen;
  };
  return Object.freeze({ kind: 'choose', choose: compileMaskSelector(cfg, plan, plan(strictest.name)) });
}

/**
 * The login endpoint as a route: POST on its exact path, held to the defaults' allow, deny and
 * cors like any route that does not override them, and to the limits the policy gives logins
 * (never none: see IdentityConfig.login.rate_limits).
 */
function loginRoute(policy: PolicyConfig): RouteConfig {
  const login = policy.identity!.login!;
  const d = policy.defaults;
  const report = loginReport(d);
  return {
    name: 'identity-login',
    match: { path: login.path, methods: ['POST'] },
    // Never forwarded; an upstream is named only because every route target has one.
    upstream: policy.upstreams.keys().next().value!,
    allow: d.allow!,
    deny: d.deny,
    ...(d.cors && { cors: d.cors }),
    json_charset: true,
    rate_limits: login.rate_limits,
    identity_required: false,
    on_mask_error: 'fail',
    ...(report.length > 0 && { report }),
    pos: login.pos,
  };
}

/**
 * The decrypt, logout and phone endpoints as routes: POST on their exact path with a verified caller
 * required, held to the defaults' allow, deny, cors and rate limits (by openid, which they have).
 */
function sessionRoute(policy: PolicyConfig, name: string, path: string, upstream: string, pos: SourcePos): RouteConfig {
  const d = policy.defaults;
  const report = loginReport(d);
  return {
    name,
    match: { path, methods: ['POST'] },
    // The decrypt and phone endpoints' upstreams are called by the gateway itself; the logout's is never called.
    upstream,
    allow: d.allow!,
    deny: d.deny,
    ...(d.cors && { cors: d.cors }),
    json_charset: true,
    rate_limits: d.rate_limits,
    identity_required: true,
    on_mask_error: 'fail',
    ...(report.length > 0 && { report }),
    pos,
  };
}
