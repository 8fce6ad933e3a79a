// Validated plain data -> PolicyConfig. Runs only on a policy with no errors, so every value
// here has the shape the schema and the checks promised; parsing cannot fail any more.

import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAddressText } from './access.js';
import { ALERT_DEFAULTS, alertsConfig, type RawAlerts } from './alerts.js';
import { parseCidr, parseClientCidr, parseHost, parseListen, parseOrigin, parseRedisNode, parseUpstreamUrl } from './addresses.js';
import { mergedHeaderRules, type RawHeaderRules, type Side } from './header-rules.js';
import { maskFields, type RawMaskChoice } from './mask-choice.js';
import { parseMaskTarget } from './mask-targets.js';
import { resolveFrom } from './files.js';
import { formatPath, type KeyPath } from './key-path.js';
import { parseDuration, parseSeconds, parseSize, type Parsed } from './units.js';
import { PAY_EGRESS_DEFAULTS, payEgressConfig, type RawPayEgress } from './pay-egress.js';
import { DELIVERY_QUEUE_DEFAULTS } from '../store/delivery-queue.js';
import type {
  AddressList,
  CorsConfig,
  IdentityConfig,
  MaskDetector,
  MaskProfileConfig,
  MaskTarget,
  RateLimitConfig,
  ReportRule,
  RedisNodeAddress,
  StoreClusterConfig,
  StoreConfig,
  StoreSentinelConfig,
  TracingConfig,
  WechatAppConfig,
  WechatAppKind,
  WechatConfig,
  WechatPayConfig,
  ListenAddress,
  PolicyConfig,
  RouteConfig,
  SourcePos,
  TlsConfig,
  UpstreamConfig,
  WebSocketConfig,
} from '../types/policy.js';
import type { Locator } from './yaml-source.js';
import { quotaBudgets } from '../wechat/quotas.js';

/** Defaults as the policy would spell them; config/policy.schema.json documents the same ones. */
export const DEFAULTS = {
  http_mode: 'redirect',
  body: '1mb',
  handshake_timeout: '10s',
  headers_timeout: '10s',
  request_timeout: '30s',
  send_timeout: '60s',
  http2: true,
  http2_streams: 100,
  http2_resets: 100,
  shutdown_timeout: '25s',
  // Kubernetes takes a few seconds to take a terminating pod out of its endpoints and for every
  // kube-proxy to follow; 5 s covers that on a healthy cluster without slowing rollouts much.
  drain_delay: '5s',
  min_version: 'TLSv1.2',
  roots: 'system',
  expiry_warning: '21d',
  upstream_timeout: '30s',
  upstream_balance: 'round_robin',
  upstream_connect_timeout: '5s',
  upstream_connections: 128,
  upstream_queue_timeout: '5s',
  eject_failures: 3,
  eject_cooldown: '10s',
  eject_max_cooldown: '5m',
  health_interval: '10s',
  health_timeout: '2s',
  health_healthy: 2,
  health_unhealthy: 3,
  strip_response_headers: ['server', 'x-powered-by'],
  cors_methods: ['GET', 'HEAD', 'POST'],
  cors_max_age: '10m',
  json_charset: true,
  store_kind: 'memory',
  key_prefix: 'wxgw:',
  command_timeout: '200ms',
  on_unavailable: 'deny',
  api_base: 'https://api.weixin.qq.com',
  api_timeout: '5s',
  // A push signed just before a Token change arrives within max_skew; an hour leaves room for retries.
  wechat_rotation_window: '1h',
  // WeChat Pay retries a notification for about a day, encrypted as it was first sent.
  wechatpay_rotation_window: '1d',
  pay_egress_api_base: PAY_EGRESS_DEFAULTS.api_base,
  pay_egress_refresh: PAY_EGRESS_DEFAULTS.refresh,
  pay_egress_timeout: PAY_EGRESS_DEFAULTS.timeout,
  pay_egress_max_skew: PAY_EGRESS_DEFAULTS.max_skew,
  pay_egress_max_body: PAY_EGRESS_DEFAULTS.max_body,
  session_ttl: '2h',
  // How far a decrypted watermark's timestamp may be from now: the data is fetched just before it is sent.
  decrypt_max_age: '10m',
  session_issuer: 'wxgw',
  openid_claim: 'openid',
  clock_tolerance: '30s',
  token_header: 'authorization',
  upstream_header: 'x-wx-openid',
  unionid_header: 'x-wx-unionid',
  partial_char: '*',
  stream_above: '1mb',
  on_mask_error: 'fail',
  callback_max_skew: '300s',
  callback_max_body: '64kb',
  delivery_attempts: 8,
  delivery_backoff: '1s',
  delivery_max_backoff: '5m',
  push_dedupe_window: '1h',
  pay_dedupe_window: '25h',
  delivery_concurrency: DELIVERY_QUEUE_DEFAULTS.concurrency,
  delivery_takeover_after: '60s',
  delivery_dead_letters: DELIVERY_QUEUE_DEFAULTS.dead_letters,
  semicolons: 'reject',
  header_underscores: 'drop',
  ipv6_prefix: 64,
  rate_limit_mode: 'enforce',
  websocket_idle_timeout: '60s',
  websocket_max_duration: '1h',
  websocket_max_connections: 1000,
  websocket_max_message: '1mb',
  ...ALERT_DEFAULTS,
  request_id_header: 'x-request-id',
  request_id_trust: true,
  sample_ratio: 1,
  service_name: 'wxgw',
  trust_incoming: true,
} as const;

/**
 * What the login endpoint gets when no rule of its own or of defaults counts logins by address
 * (no schema default: it is added beside the rules written, never instead of them). A user logs
 * in about once a session, but carrier-grade NAT puts many users behind one address.
 */
export const LOGIN_RATE_LIMIT = { key: 'ip', limit: 60, window: '1m' } as const;

type RawAllow = 'any' | string[];

interface RawCors {
  origins: string[];
  credentials?: boolean;
  methods?: string[];
  headers?: string[];
  expose_headers?: string[];
  max_age?: string;
}

interface RawRateRule {
  key: 'openid' | 'ip';
  limit: number;
  window: string;
  fallback_key?: 'ip';
  scope?: 'route' | 'global';
  ipv6_prefix?: number;
  mode?: 'enforce' | 'report';
}

interface RawAccess {
  allow?: RawAllow;
  deny?: string[];
  cors?: RawCors;
  rate_limit?: 'off' | RawRateRule | RawRateRule[];
  mask?: string | RawMaskChoice;
  identity_required?: boolean;
  request_headers?: RawHeaderRules;
  response_headers?: RawHeaderRules;
  report?: ReportRule[];
  websocket?: RawWebSocket;
}

type RawWebSocket = boolean | { idle_timeout?: string; max_duration?: string; max_connections?: number; max_message?: string };

interface RawWechatApp {
  appid: string;
  kind?: WechatAppKind;
  app_secret?: string;
  token?: string;
  encoding_aes_key?: string;
  previous?: { token?: string; encoding_aes_key?: string; until: string };
}

interface RawCallback {
  decrypt?: boolean;
  max_skew?: string;
  max_body?: string;
  delivery?: 'sync' | 'async';
  retry?: { attempts?: number; backoff?: string; max_backoff?: string };
  dedupe_window?: string;
}

interface RawMaskProfile {
  drop?: string[];
  partial?: Record<string, { keep_start?: number; keep_end?: number; char?: string }>;
  replace?: Record<string, string>;
  hash?: string[];
  hash_key?: string;
  detect?: MaskDetector[];
  content_types?: string[];
  stream_above?: string;
  key_match?: 'fold' | 'exact';
  headers?: { drop?: string[]; drop_cookies?: string[] };
}

/** The policy as written, once validated (see config/policy.schema.json). */
interface RawPolicy {
  version: 1;
  server: {
    https: { listen: string } | 'off';
    http?: { listen: string; mode?: 'redirect' | 'off' };
    admin?: { listen: string };
    egress?: { listen: string };
    public_host?: string;
    public_port?: number;
    trusted_proxies?: string[];
    strip_response_headers?: string[];
    limits?: { body?: string; handshake_timeout?: string; headers_timeout?: string; request_timeout?: string; send_timeout?: string; http2_streams?: number; http2_resets?: number };
    http2?: boolean;
    shutdown_timeout?: string;
    drain_delay?: string;
    workers?: number | 'auto';
    paths?: { semicolons?: 'reject' | 'strip' | 'keep' };
    headers?: { underscores?: 'drop' | 'reject' | 'allow' };
    trusted_headers?: string[];
    request_id?: { header?: string; trust?: boolean };
    log?: { openid_hmac_key?: string };
  };
  tls?: {
    min_version?: 'TLSv1.2' | 'TLSv1.3';
    roots?: string;
    expiry_warning?: string;
    certificates?: { cert: string; key: string; passphrase?: string }[];
    hsts?: { max_age: string; include_subdomains?: boolean; preload?: boolean };
  };
  store?: {
    kind?: 'memory' | 'redis';
    redis_url?: string;
    cluster?: { nodes: string[]; username?: string; password?: string; tls?: boolean };
    sentinels?: { hosts: string[]; name: string; username?: string; password?: string; sentinel_password?: string; tls?: boolean };
    key_prefix?: string;
    command_timeout?: string;
    on_unavailable?: 'deny' | 'allow';
    delivery_queue?: { concurrency?: number; takeover_after?: string; dead_letters?: number };
  };
  wechat?: RawWechatApp & { apps?: Record<string, RawWechatApp>; api_base?: string; api_timeout?: string; quotas?: Record<string, { per_day: number }>; rotation_window?: string; previous?: { token?: string; encoding_aes_key?: string; until: string } };
  wechatpay?: { apiv3_key?: string; platform_certificates?: string[]; public_keys?: { id: string; file: string }[]; rotation_window?: string; previous?: { apiv3_key?: string; until: string }; egress?: RawPayEgress };
  identity?: {
    login?: { app?: string; path: string; upstream?: { upstream: string; path: string; mask?: string }; rate_limit?: RawAccess['rate_limit'] };
    decrypt?: { path: string; upstream: { upstream: string; path: string; mask?: string }; max_age?: string };
    logout?: { path: string; scope?: 'session' | 'user' };
    phone?: { path: string; upstream: { upstream: string; path: string; mask?: string } };
    session?: { signing_key: string; ttl?: string; issuer?: string; previous?: { signing_key?: string; until: string } };
    jwt?: {
      secret?: string;
      public_key?: string;
      jwks?: string;
      issuer?: string;
      audience?: string;
      openid_claim?: string;
      algorithms?: string[];
      clock_tolerance?: string;
    };
    token?: { header?: string; cookie?: string };
    upstream_header?: string;
    unionid_header?: string;
  };
  ip_lists?: Record<string, string[]>;
  openid_lists?: Record<string, string[]>;
  mask_profiles?: Record<string, RawMaskProfile>;
  defaults?: RawAccess;
  alerts?: RawAlerts;
  upstreams: Record<string, RawUpstream>;
  tracing?: { otlp_endpoint: string; sample_ratio?: number; service_name?: string; trust_incoming?: boolean; headers?: Record<string, string> };
  routes: (RawAccess & {
    name: string;
    match: { path?: string; path_prefix?: string; methods?: string[]; host?: string };
    upstream: string;
    timeout?: string;
    json_charset?: boolean;
    on_mask_error?: 'fail' | 'pass';
    wechat_callback?: RawCallback & { app?: string };
    wechatpay_notify?: RawCallback;
  })[];
}

/** `websocket: true` takes every default; a mapping replaces the ones it names. */
function websocketConfig(raw: Exclude<RawWebSocket, false>): WebSocketConfig {
  const w = raw === true ? {} : raw;
  return {
    idle_timeout: sure(parseDuration(w.idle_timeout ?? DEFAULTS.websocket_idle_timeout)),
    max_duration: sure(parseDuration(w.max_duration ?? DEFAULTS.websocket_max_duration)),
    max_connections: w.max_connections ?? DEFAULTS.websocket_max_connections,
    max_message: sure(parseSize(w.max_message ?? DEFAULTS.websocket_max_message)),
  };
}

interface RawUpstream {
  url?: string;
  targets?: string[];
  balance?: 'round_robin' | 'least_busy';
  timeout?: string;
  connect_timeout?: string;
  connections?: number;
  queue_timeout?: string;
  preserve_host?: boolean;
  eject?: { failures?: number; cooldown?: string; max_cooldown?: string };
  health?: { path: string; interval?: string; timeout?: string; healthy?: number; unhealthy?: number };
  ca?: string;
  pin?: string | string[];
  client_cert?: string;
  client_key?: string;
  servername?: string;
}

function sure<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`wxgw: policy value passed validation but does not parse: ${parsed.why}`);
  return parsed.value;
}

/** One upstream; the checks made sure it has exactly one of url and targets, all alike. */
/** `pos`: positions within this upstream's entry. */
function upstreamConfig(name: string, u: RawUpstream, baseDir: string, pos: Pos): UpstreamConfig {
  const at = pos([], 'key');
  const targets = (u.targets ?? [u.url!]).map((t) => sure(parseUpstreamUrl(t)));
  const eject = u.eject ?? {};
  const health = u.health;
  const https = targets[0]!.protocol === 'https:';
  return {
    name,
    url: targets[0]!,
    timeout: sure(parseDuration(u.timeout ?? DEFAULTS.upstream_timeout)),
    targets,
    balance: u.balance ?? DEFAULTS.upstream_balance,
    preserve_host: u.preserve_host ?? false,
    connections: u.connections ?? DEFAULTS.upstream_connections,
    connect_timeout: sure(parseDuration(u.connect_timeout ?? DEFAULTS.upstream_connect_timeout)),
    queue_timeout: sure(parseDuration(u.queue_timeout ?? DEFAULTS.upstream_queue_timeout)),
    eject: {
      failures: eject.failures ?? DEFAULTS.eject_failures,
      cooldown: sure(parseDuration(eject.cooldown ?? DEFAULTS.eject_cooldown)),
      max_cooldown: sure(parseDuration(eject.max_cooldown ?? DEFAULTS.eject_max_cooldown)),
    },
    ...(health && {
      health: {
        path: health.path,
        interval: sure(parseDuration(health.interval ?? DEFAULTS.health_interval)),
        timeout: sure(parseDuration(health.timeout ?? DEFAULTS.health_timeout)),
        healthy: health.healthy ?? DEFAULTS.health_healthy,
        unhealthy: health.unhealthy ?? DEFAULTS.health_unhealthy,
      },
    }),
    ...(https && {
      tls: {
        ...(u.ca !== undefined && { ca: resolveFrom(baseDir, u.ca) }),
        pin: u.pin === undefined ? [] : typeof u.pin === 'string' ? [u.pin] : [...u.pin],
        ...(u.client_cert !== undefined && { client_cert: resolveFrom(baseDir, u.client_cert) }),
        ...(u.client_key !== undefined && { client_key: resolveFrom(baseDir, u.client_key) }),
        ...(u.servername !== undefined && { servername: u.servername.toLowerCase() }),
        files: {
          ...(u.ca !== undefined && { ca: pos(['ca']) }),
          ...(u.client_cert !== undefined && { client_cert: pos(['client_cert']) }),
          ...(u.client_key !== undefined && { client_key: pos(['client_key']) }),
        },
        pos: at,
      },
    }),
    pos: at,
  };
}

/** Lower-cased, first spelling kept, repeats dropped. */
function lowerUnique(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.toLowerCase()))];
}

/** Addresses with `ip_lists` names expanded, normalised, each block once. */
function addressList(items: readonly string[], lists: Record<string, string[]>): string[] {
  const written = items.flatMap((item) => (isAddressText(item) ? [item] : lists[item]!));
  return [...new Set(written.map((item) => sure(parseClientCidr(item))))];
}

function allowList(allow: RawAllow, lists: Record<string, string[]>): AddressList {
  return allow === 'any' ? { any: true } : { any: false, cidrs: addressList(allow, lists) };
}

function corsConfig(cors: RawCors): CorsConfig {
  return {
    origins: lowerUnique(cors.origins.map((o) => (o === '*' ? o : sure(parseOrigin(o))))),
    credentials: cors.credentials ?? false,
    methods: [...new Set((cors.methods ?? DEFAULTS.cors_methods).map((m) => m.toUpperCase()))],
    headers: lowerUnique(cors.headers ?? []),
    expose_headers: lowerUnique(cors.expose_headers ?? []),
    max_age: sure(parseSeconds(cors.max_age ?? DEFAULTS.cors_max_age)),
  };
}

type Pos = (at: KeyPath, anchor?: 'key' | 'value') => SourcePos;

/** `reportAll`: the route's `report` names rate_limit, which puts every one of its limits in report mode. */
function rateLimits(value: RawAccess['rate_limit'], at: KeyPath, pos: Pos, reportAll = false): RateLimitConfig[] {
  if (value === undefined || value === 'off') return [];
  const rules = Array.isArray(value) ? value.map((r, i) => ({ r, at: [...at, i] })) : [{ r: value, at }];
  return rules.map(({ r, at: rat }) => ({
    key: r.key,
    limit: r.limit,
    window: sure(parseDuration(r.window)),
    ...(r.fallback_key !== undefined && { fallback_key: r.fallback_key }),
    scope: r.scope ?? 'route',
    ipv6_prefix: r.ipv6_prefix ?? DEFAULTS.ipv6_prefix,
    ...((reportAll || (r.mode ?? DEFAULTS.rate_limit_mode) === 'report') && { mode: 'report' as const }),
    pos: pos(rat),
  }));
}

function maskTarget(text: string): MaskTarget {
  return sure(parseMaskTarget(text));
}

function maskProfile(name: string, p: RawMaskProfile, pos: SourcePos): MaskProfileConfig {
  return {
    name,
    drop: (p.drop ?? []).map(maskTarget),
    partial: Object.entries(p.partial ?? {}).map(([target, rule]) => ({
      target: maskTarget(target),
      rule: { keep_start: rule.keep_start ?? 0, keep_end: rule.keep_end ?? 0, char: rule.char ?? DEFAULTS.partial_char },
    })),
    replace: Object.entries(p.replace ?? {}).map(([target, value]) => ({ target: maskTarget(target), value })),
    hash: (p.hash ?? []).map(maskTarget),
    ...(p.hash_key !== undefined && { hash_key: p.hash_key }),
    detect: [...new Set(p.detect ?? [])],
    content_types: lowerUnique(p.content_types ?? []),
    stream_above: sure(parseSize(p.stream_above ?? DEFAULTS.stream_above)),
    ...(p.key_match !== undefined && { key_match: p.key_match }),
    ...(p.headers !== undefined && { headers: { drop: lowerUnique(p.headers.drop ?? []), drop_cookies: [...new Set(p.headers.drop_cookies ?? [])] } }),
    pos,
  };
}

function storeConfig(raw: RawPolicy['store'], pos: SourcePos): StoreConfig {
  const store = raw ?? {};
  const kind = store.kind ?? DEFAULTS.store_kind;
  return {
    kind,
    ...(kind === 'redis' && store.redis_url !== undefined && { redis_url: store.redis_url }),
    ...(kind === 'redis' && store.cluster !== undefined && { cluster: clusterConfig(store.cluster) }),
    ...(kind === 'redis' && store.sentinels !== undefined && { sentinels: sentinelConfig(store.sentinels) }),
    key_prefix: store.key_prefix ?? DEFAULTS.key_prefix,
    command_timeout: sure(parseDuration(store.command_timeout ?? DEFAULTS.command_timeout)),
    on_unavailable: store.on_unavailable ?? DEFAULTS.on_unavailable,
    // Absent unless written: the code that reads it (store/create-delivery-queue.ts) has the same defaults.
    ...(store.delivery_queue && {
      delivery_queue: {
        concurrency: store.delivery_queue.concurrency ?? DEFAULTS.delivery_concurrency,
        takeover_after: sure(parseDuration(store.delivery_queue.takeover_after ?? DEFAULTS.delivery_takeover_after)),
        dead_letters: store.delivery_queue.dead_letters ?? DEFAULTS.delivery_dead_letters,
      },
    }),
    pos,
  };
}

type RawStore = NonNullable<RawPolicy['store']>;

const redisNodes = (list: readonly string[]): RedisNodeAddress[] => list.map((text) => sure(parseRedisNode(text)));

function clusterConfig(c: NonNullable<RawStore['cluster']>): StoreClusterConfig {
  return {
    nodes: redisNodes(c.nodes),
    ...(c.username !== undefined && { username: c.username }),
    ...(c.password !== undefined && { password: c.password }),
    tls: c.tls ?? false,
  };
}

function sentinelConfig(s: NonNullable<RawStore['sentinels']>): StoreSentinelConfig {
  return {
    hosts: redisNodes(s.hosts),
    name: s.name,
    ...(s.username !== undefined && { username: s.username }),
    ...(s.password !== undefined && { password: s.password }),
    ...(s.sentinel_password !== undefined && { sentinel_password: s.sentinel_password }),
    tls: s.tls ?? false,
  };
}

function tracingConfig(t: NonNullable<RawPolicy['tracing']>, pos: SourcePos): TracingConfig {
  return {
    otlp_endpoint: t.otlp_endpoint,
    sample_ratio: t.sample_ratio ?? DEFAULTS.sample_ratio,
    service_name: t.service_name ?? DEFAULTS.service_name,
    trust_incoming: t.trust_incoming ?? DEFAULTS.trust_incoming,
    headers: { ...t.headers },
    pos,
  };
}

function wechatConfig(w: NonNullable<RawPolicy['wechat']>, pos: Pos): WechatConfig {
  return {
    appid: w.appid,
    ...(w.app_secret !== undefined && { app_secret: w.app_secret }),
    ...(w.token !== undefined && { token: w.token }),
    ...(w.encoding_aes_key !== undefined && { encoding_aes_key: w.encoding_aes_key }),
    api_base: sure(parseUpstreamUrl(w.api_base ?? DEFAULTS.api_base)),
    api_timeout: sure(parseDuration(w.api_timeout ?? DEFAULTS.api_timeout)),
    quotas: quotaBudgets(w.quotas),
    rotation_window: sure(parseDuration(w.rotation_window ?? DEFAULTS.wechat_rotation_window)),
    ...(w.previous && { previous: { ...w.previous, until: Date.parse(w.previous.until) } }),
    ...(w.kind !== undefined && { kind: w.kind }),
    ...(w.apps && {
      apps: Object.fromEntries(Object.entries(w.apps).map(([name, a]) => [name, wechatApp(a, pos(['wechat', 'apps', name], 'key'))])),
    }),
    pos: pos(['wechat'], 'key'),
  };
}

function wechatApp(a: RawWechatApp, pos: SourcePos): WechatAppConfig {
  return {
    appid: a.appid,
    ...(a.app_secret !== undefined && { app_secret: a.app_secret }),
    ...(a.token !== undefined && { token: a.token }),
    ...(a.encoding_aes_key !== undefined && { encoding_aes_key: a.encoding_aes_key }),
    ...(a.previous && { previous: { ...a.previous, until: Date.parse(a.previous.until) } }),
    ...(a.kind !== undefined && { kind: a.kind }),
    pos,
  };
}

/** Files were read and parsed by the checks already; reading them again cannot fail but by a race. */
function wechatPayConfig(p: NonNullable<RawPolicy['wechatpay']>, baseDir: string, pos: SourcePos, egressPos: SourcePos): WechatPayConfig {
  const keys = [
    ...(p.platform_certificates ?? []).map((file) => {
      const path = resolveFrom(baseDir, file);
      const cert = new X509Certificate(readFileSync(path));
      return { serial: cert.serialNumber.toUpperCase(), public_key_pem: cert.publicKey.export({ type: 'spki', format: 'pem' }).toString(), file: path };
    }),
    ...(p.public_keys ?? []).map((k) => {
      const path = resolveFrom(baseDir, k.file);
      const pem = createPublicKey(readFileSync(path)).export({ type: 'spki', format: 'pem' }).toString();
      return { serial: k.id, public_key_pem: pem, file: path };
    }),
  ];
  return {
    ...(p.apiv3_key !== undefined && { apiv3_key: p.apiv3_key }),
    keys,
    rotation_window: sure(parseDuration(p.rotation_window ?? DEFAULTS.wechatpay_rotation_window)),
    ...(p.previous && { previous: { ...p.previous, until: Date.parse(p.previous.until) } }),
    ...(p.egress && { egress: payEgressConfig(p.egress, p.public_keys, egressPos) }),
    pos,
  };
}

/**
 * A login has no openid yet: only `ip` rules and `fallback_key: ip` count it. Rules in report
 * mode refuse no login, so without an enforced one the gateway's default is added.
 */
function loginLimits(own: RawAccess['rate_limit'], defaults: RawAccess['rate_limit'], pos: Pos, defaultsReport: boolean): RateLimitConfig[] {
  const rules = rateLimits(own ?? defaults, own !== undefined ? ['identity', 'login', 'rate_limit'] : ['defaults', 'rate_limit'], pos, own === undefined && defaultsReport);
  if (rules.some((r) => r.mode !== 'report' && (r.key === 'ip' || r.fallback_key === 'ip'))) return rules;
  const d = LOGIN_RATE_LIMIT;
  const at = pos(['identity', 'login'], 'key');
  return [...rules, { key: d.key, limit: d.limit, window: sure(parseDuration(d.window)), scope: 'route', ipv6_prefix: DEFAULTS.ipv6_prefix, pos: at }];
}

function identityConfig(i: NonNullable<RawPolicy['identity']>, baseDir: string, pos: Pos, defaults: RawAccess): IdentityConfig {
  const jwt = i.jwt;
  const jwtKey = (): NonNullable<IdentityConfig['jwt']>['key'] => {
    if (jwt!.secret !== undefined) return { kind: 'secret', secret: jwt!.secret };
    if (jwt!.public_key !== undefined) {
      const file = resolveFrom(baseDir, jwt!.public_key);
      return { kind: 'public_key', pem: readFileSync(file, 'utf8'), file };
    }
    const file = resolveFrom(baseDir, jwt!.jwks!);
    return { kind: 'jwks', jwks: JSON.parse(readFileSync(file, 'utf8')) as unknown, file };
  };
  return {
    ...(i.login && {
      login: {
        ...(i.login.app !== undefined && { app: i.login.app }),
        path: i.login.path,
        ...(i.login.upstream && { upstream: { ...i.login.upstream } }),
        rate_limits: loginLimits(i.login.rate_limit, defaults.rate_limit, pos, defaults.report?.includes('rate_limit') === true),
        pos: pos(['identity', 'login'], 'key'),
      },
    }),
    ...(i.decrypt && {
      decrypt: {
        path: i.decrypt.path,
        upstream: { ...i.decrypt.upstream },
        max_age: sure(parseDuration(i.decrypt.max_age ?? DEFAULTS.decrypt_max_age)),
        pos: pos(['identity', 'decrypt'], 'key'),
      },
    }),
    ...(i.logout && { logout: { path: i.logout.path, scope: i.logout.scope ?? 'session', pos: pos(['identity', 'logout'], 'key') } }),
    ...(i.phone && {
      phone: { path: i.phone.path, upstream: { ...i.phone.upstream }, pos: pos(['identity', 'phone'], 'key') },
    }),
    ...(i.session && {
      session: {
        signing_key: i.session.signing_key,
        ttl: sure(parseDuration(i.session.ttl ?? DEFAULTS.session_ttl)),
        issuer: i.session.issuer ?? DEFAULTS.session_issuer,
        ...(i.session.previous && { previous: { ...i.session.previous, until: Date.parse(i.session.previous.until) } }),
      },
    }),
    ...(jwt && {
      jwt: {
        key: jwtKey(),
        ...(jwt.issuer !== undefined && { issuer: jwt.issuer }),
        ...(jwt.audience !== undefined && { audience: jwt.audience }),
        openid_claim: jwt.openid_claim ?? DEFAULTS.openid_claim,
        ...(jwt.algorithms && { algorithms: [...new Set(jwt.algorithms)] }),
        clock_tolerance: sure(parseDuration(jwt.clock_tolerance ?? DEFAULTS.clock_tolerance)),
      },
    }),
    token: i.token?.cookie !== undefined ? { cookie: i.token.cookie } : { header: (i.token?.header ?? DEFAULTS.token_header).toLowerCase() },
    upstream_header: (i.upstream_header ?? DEFAULTS.upstream_header).toLowerCase(),
    unionid_header: (i.unionid_header ?? DEFAULTS.unionid_header).toLowerCase(),
    pos: pos(['identity'], 'key'),
  };
}

/** `dedupeWindow`: the default differs by product (a push is retried for seconds, a Pay notification for a day). */
function callbackConfig(c: RawCallback & { app?: string }, pos: SourcePos, dedupeWindow: string) {
  return {
    ...(c.app !== undefined && { app: c.app }),
    decrypt: c.decrypt ?? false,
    max_skew: sure(parseDuration(c.max_skew ?? DEFAULTS.callback_max_skew)),
    max_body: sure(parseSize(c.max_body ?? DEFAULTS.callback_max_body)),
    ...(c.delivery === 'async' && {
      async: {
        retry: {
          attempts: c.retry?.attempts ?? DEFAULTS.delivery_attempts,
          backoff: sure(parseDuration(c.retry?.backoff ?? DEFAULTS.delivery_backoff)),
          max_backoff: sure(parseDuration(c.retry?.max_backoff ?? DEFAULTS.delivery_max_backoff)),
        },
        dedupe_window: sure(parseDuration(c.dedupe_window ?? dedupeWindow)),
      },
    }),
    pos,
  };
}

function headerRules(side: Side, defaults: RawHeaderRules | undefined, route: RawHeaderRules | undefined) {
  const merged = mergedHeaderRules(side, defaults, route);
  return merged && { [side]: merged };
}

export interface BuildContext {
  /** Absolute path of the policy file. */
  file: string;
  /** The file as named by the caller, for positions. */
  shownFile: string;
  baseDir: string;
  locator: Locator;
}

/** The TLS section alone; load.ts also builds it when only other sections are wrong. */
export function tlsConfig(data: unknown, ctx: BuildContext): TlsConfig {
  // Optional only with `https: off`, where the checks allowed leaving it out.
  const tls = (data as RawPolicy).tls ?? {};
  const pos = (at: KeyPath, anchor: 'key' | 'value' = 'value'): SourcePos => ({
    file: ctx.shownFile,
    ...ctx.locator.position(at, anchor),
    path: formatPath(at),
  });
  const roots = tls.roots ?? DEFAULTS.roots;
  return {
    min_version: tls.min_version ?? DEFAULTS.min_version,
    roots: roots === 'system' ? 'system' : { bundle: resolveFrom(ctx.baseDir, roots) },
    expiry_warning: sure(parseDuration(tls.expiry_warning ?? DEFAULTS.expiry_warning)),
    certificates: (tls.certificates ?? []).map((c, i) => ({
      cert: resolveFrom(ctx.baseDir, c.cert),
      key: resolveFrom(ctx.baseDir, c.key),
      ...(c.passphrase !== undefined && { passphrase: c.passphrase }),
      pos: pos(['tls', 'certificates', i]),
    })),
    hsts: tls.hsts
      ? {
          max_age: sure(parseSeconds(tls.hsts.max_age)),
          include_subdomains: tls.hsts.include_subdomains ?? false,
          preload: tls.hsts.preload ?? false,
        }
      : null,
    pos: pos(['tls'], 'key'),
  };
}

export function buildConfig(data: unknown, ctx: BuildContext): PolicyConfig {
  const raw = data as RawPolicy; // guaranteed by the schema and checks that found no error
  const pos = (at: KeyPath, anchor: 'key' | 'value' = 'value'): SourcePos => ({
    file: ctx.shownFile,
    ...ctx.locator.position(at, anchor),
    path: formatPath(at),
  });
  const listener = (name: 'https' | 'http' | 'admin' | 'egress', listen: string): { listen: ListenAddress; pos: SourcePos } => ({
    listen: sure(parseListen(listen)),
    pos: pos(['server', name, 'listen']),
  });
  const { server } = raw;
  const limits = server.limits ?? {};

  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, u] of Object.entries(raw.upstreams)) upstreams.set(name, upstreamConfig(name, u, ctx.baseDir, (at, anchor) => pos(['upstreams', name, ...at], anchor)));

  const lists = raw.ip_lists ?? {};
  const defaults = raw.defaults ?? {};
  const routes = raw.routes.map((r, i): RouteConfig => {
    const { path, path_prefix, methods, host } = r.match;
    // A route key replaces the default key whole; the checks made sure one of them gives allow.
    const allow = r.allow ?? defaults.allow!;
    const deny = r.deny ?? defaults.deny ?? [];
    const cors = r.cors ?? defaults.cors;
    const limitsAt: KeyPath = r.rate_limit !== undefined ? ['routes', i, 'rate_limit'] : ['defaults', 'rate_limit'];
    const maskAt: KeyPath = r.mask !== undefined ? ['routes', i, 'mask'] : ['defaults', 'mask'];
    const report = r.report ?? defaults.report ?? [];
    const websocket = r.websocket ?? defaults.websocket;
    return {
      name: r.name,
      match: {
        ...(path !== undefined && { path }),
        ...(path_prefix !== undefined && { path_prefix }),
        ...(methods && { methods: methods.map((m) => m.toUpperCase()) }),
        ...(host !== undefined && { host: sure(parseHost(host)) }),
      },
      upstream: r.upstream,
      ...(r.timeout !== undefined && { timeout: sure(parseDuration(r.timeout)) }),
      allow: allowList(allow, lists),
      deny: addressList(deny, lists),
      ...(cors && { cors: corsConfig(cors) }),
      json_charset: r.json_charset ?? DEFAULTS.json_charset,
      rate_limits: rateLimits(r.rate_limit ?? defaults.rate_limit, limitsAt, pos, report.includes('rate_limit')),
      identity_required: r.identity_required ?? defaults.identity_required ?? false,
      ...maskFields(r.mask ?? defaults.mask, raw.openid_lists, () => pos(maskAt, 'key')),
      on_mask_error: r.on_mask_error ?? DEFAULTS.on_mask_error,
      ...(r.wechat_callback && { wechat_callback: callbackConfig(r.wechat_callback, pos(['routes', i, 'wechat_callback'], 'key'), DEFAULTS.push_dedupe_window) }),
      ...(r.wechatpay_notify && { wechatpay_notify: callbackConfig(r.wechatpay_notify, pos(['routes', i, 'wechatpay_notify'], 'key'), DEFAULTS.pay_dedupe_window) }),
      ...headerRules('request_headers', defaults.request_headers, r.request_headers),
      ...headerRules('response_headers', defaults.response_headers, r.response_headers),
      ...(report.length > 0 && { report: [...report] }),
      ...(websocket !== undefined && websocket !== false && { websocket: websocketConfig(websocket) }),
      pos: pos(['routes', i]),
    };
  });

  return {
    version: 1,
    file: ctx.file,
    server: {
      https: server.https === 'off' ? null : listener('https', server.https.listen),
      http: server.http ? { ...listener('http', server.http.listen), mode: server.http.mode ?? DEFAULTS.http_mode } : null,
      admin: server.admin ? listener('admin', server.admin.listen) : null,
      ...(server.egress && { egress: listener('egress', server.egress.listen) }),
      ...(server.public_host !== undefined && { public_host: sure(parseHost(server.public_host)) }),
      ...(server.public_port !== undefined && { public_port: server.public_port }),
      trusted_proxies: (server.trusted_proxies ?? []).map((cidr) => sure(parseCidr(cidr))),
      strip_response_headers: lowerUnique(server.strip_response_headers ?? DEFAULTS.strip_response_headers),
      limits: {
        body: sure(parseSize(limits.body ?? DEFAULTS.body)),
        handshake_timeout: sure(parseDuration(limits.handshake_timeout ?? DEFAULTS.handshake_timeout)),
        headers_timeout: sure(parseDuration(limits.headers_timeout ?? DEFAULTS.headers_timeout)),
        request_timeout: sure(parseDuration(limits.request_timeout ?? DEFAULTS.request_timeout)),
        send_timeout: sure(parseDuration(limits.send_timeout ?? DEFAULTS.send_timeout)),
        http2_streams: limits.http2_streams ?? DEFAULTS.http2_streams,
        http2_resets: limits.http2_resets ?? DEFAULTS.http2_resets,
      },
      http2: server.http2 ?? DEFAULTS.http2,
      shutdown_timeout: sure(parseDuration(server.shutdown_timeout ?? DEFAULTS.shutdown_timeout)),
      drain_delay: sure(parseDuration(server.drain_delay ?? DEFAULTS.drain_delay)),
      ...(server.workers !== undefined && { workers: server.workers }),
      paths: { semicolons: server.paths?.semicolons ?? DEFAULTS.semicolons },
      headers: { underscores: server.headers?.underscores ?? DEFAULTS.header_underscores },
      trusted_headers: lowerUnique(server.trusted_headers ?? []),
      request_id: {
        header: (server.request_id?.header ?? DEFAULTS.request_id_header).toLowerCase(),
        trust: server.request_id?.trust ?? DEFAULTS.request_id_trust,
      },
      log: { ...(server.log?.openid_hmac_key !== undefined && { openid_hmac_key: server.log.openid_hmac_key }) },
    },
    tls: tlsConfig(raw, ctx),
    upstreams,
    routes,
    defaults: {
      ...(defaults.allow && { allow: allowList(defaults.allow, lists) }),
      deny: addressList(defaults.deny ?? [], lists),
      ...(defaults.cors && { cors: corsConfig(defaults.cors) }),
      rate_limits: rateLimits(defaults.rate_limit, ['defaults', 'rate_limit'], pos, defaults.report?.includes('rate_limit')),
      ...maskFields(defaults.mask, raw.openid_lists, () => pos(['defaults', 'mask'], 'key')),
      ...(defaults.report && defaults.report.length > 0 && { report: [...defaults.report] }),
    },
    store: storeConfig(raw.store, pos(raw.store ? ['store'] : [], 'key')),
    ...(raw.wechat && { wechat: wechatConfig(raw.wechat, pos) }),
    ...(raw.wechatpay && { wechatpay: wechatPayConfig(raw.wechatpay, ctx.baseDir, pos(['wechatpay'], 'key'), pos(['wechatpay', 'egress', 'listen'])) }),
    ...(raw.identity && { identity: identityConfig(raw.identity, ctx.baseDir, pos, defaults) }),
    mask_profiles: new Map(
      Object.entries(raw.mask_profiles ?? {}).map(([name, p]) => [name, maskProfile(name, p, pos(['mask_profiles', name], 'key'))]),
    ),
    ...(raw.alerts && { alerts: alertsConfig(raw.alerts, ctx.baseDir, pos) }),
    ...(raw.tracing && { tracing: tracingConfig(raw.tracing, pos(['tracing'], 'key')) }),
  };
}
