// The validated policy, as the rest of the gateway sees it: every duration in milliseconds,
// every size in bytes, every path absolute, every ${...} resolved. Produced by loadPolicy().

/** Where a value stands in the policy file, for messages that point at it. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
  /** Dotted key path, e.g. `routes[2].match.path_prefix`. */
  path: string;
}

export interface ListenAddress {
  host: string;
  port: number;
}

export interface CertificateEntry {
  /** Absolute path of the PEM file: leaf first, then intermediates. */
  cert: string;
  /** Absolute path of the PEM private key. */
  key: string;
  /** Passphrase of an encrypted key, resolved from ${...}. */
  passphrase?: string;
  pos: SourcePos;
}

export interface TlsConfig {
  min_version: 'TLSv1.2' | 'TLSv1.3';
  /** `system` (Node's bundled Mozilla roots) or the absolute path of a PEM CA bundle. */
  roots: 'system' | { bundle: string };
  /** A leaf expiring within this many milliseconds is a warning. */
  expiry_warning: number;
  /** At least one, except with `server.https: off`, where none may be given. */
  certificates: CertificateEntry[];
  /** Strict-Transport-Security on every HTTPS response; null when the policy has no `hsts`. */
  hsts: HstsConfig | null;
  pos: SourcePos;
}

export interface HstsConfig {
  /** Seconds. */
  max_age: number;
  include_subdomains: boolean;
  preload: boolean;
}

export interface UpstreamConfig {
  name: string;
  /** Origin plus optional base path, e.g. http://backend:9000 or http://backend:9000/v1 */
  url: URL;
  /** Milliseconds to wait for the upstream's response headers and between body chunks. */
  timeout: number;
  /** Every target's origin plus the shared base path, `url` first; `url` alone gives one. */
  targets: URL[];
  /** How a request picks among the targets that are up. */
  balance: 'round_robin' | 'least_busy';
  /** Send the client's Host (normal form, no port) instead of the target's. */
  preserve_host: boolean;
  /** Connections per target at most; a request past them waits for one, up to queue_timeout. */
  connections: number;
  /** Milliseconds to open a connection (TCP and TLS). */
  connect_timeout: number;
  /** Milliseconds a request waits for a free connection before 503 `upstream_busy`. */
  queue_timeout: number;
  /** Passive health: a target is ejected after `failures` connection failures in a row. */
  eject: UpstreamEjectConfig;
  /** Active health checks; absent: none. */
  health?: UpstreamHealthConfig;
  /** How an https:// upstream is verified and what the gateway shows it; absent for http://. */
  tls?: UpstreamTlsConfig;
  pos: SourcePos;
}

export interface UpstreamEjectConfig {
  /** Connection failures in a row that eject a target. */
  failures: number;
  /** Milliseconds of the first ejection; each ejection in a row doubles it, up to max_cooldown. */
  cooldown: number;
  max_cooldown: number;
}

export interface UpstreamHealthConfig {
  /** Path (with query) of the check, below the upstream's base path. */
  path: string;
  /** Milliseconds between checks of each target. */
  interval: number;
  /** Milliseconds a check may take. */
  timeout: number;
  /** Checks in a row that bring a target back, and that take it out. */
  healthy: number;
  unhealthy: number;
}

export interface UpstreamTlsConfig {
  /** Absolute path of a PEM CA bundle to verify the upstream against; absent: the system store. */
  ca?: string;
  /** SHA-256 of the upstream leaf's SubjectPublicKeyInfo, base64; empty: no pinning. */
  pin: string[];
  /** Absolute paths of the client certificate (leaf first) and its key, for mutual TLS. */
  client_cert?: string;
  client_key?: string;
  /** SNI and the name the certificate must carry; absent: the target's host name. */
  servername?: string;
  /** Where each file is named, for messages about what it holds. */
  files: { ca?: SourcePos; client_cert?: SourcePos; client_key?: SourcePos };
  pos: SourcePos;
}

export interface RouteMatch {
  path?: string;
  path_prefix?: string;
  /** Upper-case method names; absent means every method. */
  methods?: string[];
  /** Lower-case host name without port; absent means every host. */
  host?: string;
}

/** Client addresses, with `ip_lists` names already expanded. */
export type AddressList = { any: true } | { any: false; cidrs: string[] };

export interface CorsConfig {
  /**
   * Allowed origins as written, lower-cased: exact (`https://app.example.com`, with a port when
   * not the scheme's default) or a subdomain pattern (`https://*.example.com`) that matches one
   * or more whole labels in front of the suffix, never the bare suffix itself.
   */
  origins: string[];
  credentials: boolean;
  /** Upper-case methods a preflight may ask for. */
  methods: string[];
  /** Lower-case request headers a preflight may ask for. */
  headers: string[];
  /** Response headers the browser may show the page (lower-case). */
  expose_headers: string[];
  /** Seconds a browser may cache a preflight answer. */
  max_age: number;
}

export interface RouteConfig {
  name: string;
  match: RouteMatch;
  upstream: string;
  /** Overrides the upstream's timeout for this route. */
  timeout?: number;
  /** Who may call this route: the route's `allow`, else `defaults.allow`; required one way. */
  allow: AddressList;
  /** CIDRs carved out of `allow` (route's, else defaults'); empty when none. */
  deny: string[];
  /** The route's `cors`, else `defaults.cors`; absent means no CORS headers at all. */
  cors?: CorsConfig;
  /** Add `; charset=utf-8` to a JSON Content-Type that has no charset (default true). */
  json_charset: boolean;
  /** Every limit that applies (route's `rate_limit`, else defaults'); empty when none. */
  rate_limits: RateLimitConfig[];
  /** Refuse requests without a verified openid (401). */
  identity_required: boolean;
  /**
   * Name of the mask profile for this route's JSON answers (route's, else defaults'); absent: none.
   * With `mask_by`, its `default`: the strictest, for every caller the choice does not pick.
   */
  mask?: string;
  /** The looser profiles verified callers may get (`mask: { by, profiles, default }`); absent: `mask` for all. */
  mask_by?: MaskChoiceConfig;
  /** What a response that cannot be masked gets: 502 `mask_failed` (default) or passed unmasked. */
  on_mask_error: 'fail' | 'pass';
  wechat_callback?: WechatCallbackConfig;
  wechatpay_notify?: WechatPayNotifyConfig;
  /** `request_headers` (towards the upstream), the route's merged over defaults' per header name; absent: none. */
  request_headers?: HeaderRulesConfig;
  /** `response_headers` (towards the client), merged the same way; absent: none. */
  response_headers?: HeaderRulesConfig;
  /** Rule kinds in report mode (route's `report`, else defaults'); absent when every rule is enforced. */
  report?: ReportRule[];
  /** WebSocket upgrades this route forwards (route's `websocket`, else defaults'); absent: refused. */
  websocket?: WebSocketConfig;
  pos: SourcePos;
}

/** Header rules of one side, lower-case names, values as written; never a gateway-owned header. */
export interface HeaderRulesConfig {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

/**
 * A rule kind `report` can name: decided and counted, never enforced (docs/policy.md, report
 * mode). `callback` stands for the route's wechat_callback or wechatpay_notify.
 */
export type ReportRule = 'allow' | 'deny' | 'cors' | 'callback' | 'identity_required' | 'rate_limit' | 'mask';
/** `websocket`: how long and how many WebSocket sessions a route keeps open. */
export interface WebSocketConfig {
  /** Milliseconds without a message or ping in either direction before the session is closed. */
  idle_timeout: number;
  /** Milliseconds a session may last in all. */
  max_duration: number;
  /** Sessions open at once on this route, per gateway process. */
  max_connections: number;
  /** Bytes of the largest message accepted from either side. */
  max_message: number;
}

/** `store`: where rate-limit counters, callback nonces, one-time login codes and sessions live. */
/** host:port of a Redis node or sentinel; the host may be a name, resolved when connecting. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

export interface StoreClusterConfig {
  nodes: RedisNodeAddress[];
  username?: string;
  /** A secret: never logged. */
  password?: string;
  tls: boolean;
}

export interface StoreSentinelConfig {
  hosts: RedisNodeAddress[];
  /** The master's name as the sentinels monitor it. */
  name: string;
  /** For the master and replicas. */
  username?: string;
  /** A secret: never logged. */
  password?: string;
  /** The sentinels' own password. A secret. */
  sentinel_password?: string;
  tls: boolean;
}

export interface StoreConfig {
  kind: 'memory' | 'redis';
  /** redis:// or rediss:// URL of one server; with kind redis, exactly one of redis_url, cluster and sentinels is present. */
  redis_url?: string;
  /** Redis Cluster: seed nodes and the credentials of every node. */
  cluster?: StoreClusterConfig;
  /** Sentinel-managed Redis: the sentinels and the master's name. */
  sentinels?: StoreSentinelConfig;
  /** Prefix of every key wxgw writes (default `wxgw:`). */
  key_prefix: string;
  /** Milliseconds one Redis command may take before the store counts as unavailable (default 50). */
  command_timeout: number;
  /** What requests that need the store get while it is down: refused (503) or admitted. */
  on_unavailable: 'deny' | 'allow';
  /** Absent: DELIVERY_QUEUE_DEFAULTS (store/delivery-queue.ts). */
  delivery_queue?: DeliveryQueueConfig;
  pos: SourcePos;
}

/** One alert channel (`alerts.channels.NAME`): a webhook and the format it speaks. */
export interface AlertChannelConfig {
  name: string;
  kind: 'webhook' | 'wecom' | 'dingtalk' | 'feishu';
  /** A secret when it carries a robot's key; never logged, never in a payload. */
  url: URL;
  /** DingTalk/Feishu signing secret. */
  secret?: string;
  /** Absolute path of a PEM CA bundle that replaces Node's roots for this webhook. */
  ca?: string;
}

/** One alert rule; the fields after `resolved` are the ones its kind reads. */
export type AlertRuleConfig = {
  name: string;
  channels: string[];
  /** Milliseconds the rule stays quiet after an alert while it keeps firing. */
  cooldown: number;
  resolved: boolean;
  pos: SourcePos;
} & (
  | { kind: 'refusals'; reason: string; more_than: number; /** ms */ window: number }
  | { kind: 'store_down'; /** ms */ for: number }
  | { kind: 'certificate_expiring'; /** ms */ before_expiry: number }
  | { kind: 'reload_failed' }
);

/** `alerts`: rules over the gateway's own signals and the webhooks they reach. */
export interface AlertsConfig {
  /** How payloads name this gateway (the host name by default). */
  instance: string;
  /** Milliseconds between checks of state rules. */
  check_interval: number;
  delivery: { attempts: number; /** ms */ backoff: number; /** ms */ max_backoff: number; /** ms */ timeout: number; queue: number };
  channels: Map<string, AlertChannelConfig>;
  rules: AlertRuleConfig[];
  pos: SourcePos;
}

/** `tracing`: OpenTelemetry spans sent over OTLP/HTTP; absent: no tracing at all. */
export interface TracingConfig {
  /** The collector's OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. */
  otlp_endpoint: string;
  /** Share of new traces recorded, 0 to 1; a trusted parent's sampling decision is kept. */
  sample_ratio: number;
  service_name: string;
  /** Whether a trusted proxy's traceparent continues its trace; nobody else's ever does. */
  trust_incoming: boolean;
  /** Headers sent with every export (a collector's token). Secrets already resolved. */
  headers: Record<string, string>;
  pos: SourcePos;
}

/** `wechat`: the account wxgw speaks for. Secrets already resolved from ${...}. */
export interface WechatConfig {
  appid: string;
  app_secret?: string;
  /** Token for message-push signatures. */
  token?: string;
  /** The 43-character EncodingAESKey, as written (without the trailing `=`). */
  encoding_aes_key?: string;
  /** Base URL of the WeChat HTTP APIs, default https://api.weixin.qq.com (tests point it at a fake). */
  api_base: URL;
  /** Milliseconds a WeChat API call may take (default 5000). */
  api_timeout: number;
  /** Daily budgets by API path for calls through the egress listener: the built-in defaults with the policy's entries over them. */
  quotas?: ReadonlyMap<string, number>;
  /** Milliseconds a replaced token or encoding_aes_key still verifies after a reload changed it (the loader sets it, default 1h; none when absent). */
  rotation_window?: number;
  /** Values replaced at WeChat's console, still accepted until `until` (epoch ms). */
  previous?: { token?: string; encoding_aes_key?: string; until: number };
  /** `miniprogram`, `official` or `wecom`: for readers of the policy only. */
  kind?: WechatAppKind;
  /** Further apps by name (`wechat.apps`); the fields above are the default app. */
  apps?: Record<string, WechatAppConfig>;
  pos: SourcePos;
}

export type WechatAppKind = 'miniprogram' | 'official' | 'wecom';

/** One app under `wechat.apps`: its own id and secrets, everything else shared with `wechat`. */
export interface WechatAppConfig {
  /** AppID, WeCom corp id or suite id: the receive id its decrypted messages end with. */
  appid: string;
  app_secret?: string;
  token?: string;
  encoding_aes_key?: string;
  previous?: { token?: string; encoding_aes_key?: string; until: number };
  kind?: WechatAppKind;
  pos: SourcePos;
}

/** `wechatpay`: WeChat Pay API v3 notification verification. */
export interface WechatPayConfig {
  /** The 32-byte APIv3 key, for decrypting notification resources. */
  apiv3_key?: string;
  /** Verification keys by the serial WeChat Pay sends in `Wechatpay-Serial`. */
  keys: WechatPayKey[];
  /** Milliseconds a replaced apiv3_key still decrypts after a reload changed it (the loader sets it, default 1d; none when absent). */
  rotation_window?: number;
  /** An APIv3 key replaced at the merchant platform, still decrypting until `until` (epoch ms). */
  previous?: { apiv3_key?: string; until: number };
  /** `wechatpay.egress`: the listener that signs the backend's Pay API calls; absent when not offered. */
  egress?: WechatPayEgressConfig;
  pos: SourcePos;
}

/** `wechatpay.egress`. Secrets already resolved from ${...}. */
export interface WechatPayEgressConfig {
  /** Plain-HTTP listener the backend uses as its Pay API base URL. */
  listen: ListenAddress;
  mchid: string;
  /** Serial number of the merchant API certificate (upper-case hex), sent as serial_no. */
  serial_no: string;
  /** PEM of the merchant API private key. A secret: it never leaves wxgw. */
  private_key: string;
  /** Base URL of the Pay API, default https://api.mch.weixin.qq.com (tests point it at a fake). */
  api_base: URL;
  /** Whether platform certificates are downloaded from /v3/certificates (needs apiv3_key). */
  download_certificates: boolean;
  /** Milliseconds between downloads of the platform certificates (default 12 h). */
  refresh: number;
  /** Milliseconds a Pay call may take, connect to last byte (default 10 s). */
  timeout: number;
  /** Milliseconds an answer's Wechatpay-Timestamp may differ from the gateway's clock (default 5 min). */
  max_skew: number;
  /** Largest request body, and largest signed answer, in bytes (default 1 MiB). */
  max_body: number;
  pos: SourcePos;
}

export interface WechatPayKey {
  /** A platform certificate's serial number (upper-case hex) or a `PUB_KEY_ID_...` id. */
  serial: string;
  /** PEM of the public key (taken from the certificate for platform certificates). */
  public_key_pem: string;
  /** Absolute path of the file it came from, for messages. */
  file: string;
}

/** `identity`: where a verified openid comes from. */
export interface IdentityConfig {
  /** wxgw's own login endpoint exchanging a wx.login() code; absent when not offered. */
  login?: {
    /** The `wechat.apps` name whose appid and app_secret exchange codes; absent: the default app. */
    app?: string;
    /** Normalised exact path, e.g. /wx/login; answered by the gateway, POST only. */
    path: string;
    /** After a successful exchange, tell the legacy backend about the user. */
    /** The legacy backend's answer is included in the login answer, masked with `mask` (default: defaults' mask). */
    upstream?: { upstream: string; path: string; mask?: string };
    /**
     * Its `rate_limit`, else `defaults.rate_limit`; when no rule of those counts a login (only
     * the address can: there is no openid yet), the gateway's default per-address rule as well.
     */
    rate_limits: RateLimitConfig[];
    pos: SourcePos;
  };
  /**
   * The decrypt endpoint: POST `{encryptedData, iv[, rawData, signature]}` with a session token;
   * wxgw decrypts with the session's session_key and hands the plaintext to `upstream`.
   */
  decrypt?: {
    /** Normalised exact path, e.g. /wx/decrypt; answered by the gateway, POST only. */
    path: string;
    /** Where the plaintext goes (POST, JSON, with the verified openid header); `mask`: the client's view (default: defaults' mask). */
    upstream: { upstream: string; path: string; mask?: string };
    /** Milliseconds a watermark timestamp may be away from now (default 10 min). */
    max_age: number;
    pos: SourcePos;
  };
  /** The logout endpoint: POST with a session token ends it before its `exp` (identity/sessions.ts). */
  logout?: {
    /** Normalised exact path, e.g. /wx/logout; answered by the gateway, POST only. */
    path: string;
    /** `session`: the token presented; `user`: every token of its openid (default session). */
    scope: 'session' | 'user';
    pos: SourcePos;
  };
  /** Phone numbers by code (getuserphonenumber); the number goes to `upstream` only, masked to the client. */
  phone?: {
    /** Normalised exact path, e.g. /wx/phone; answered by the gateway, POST only, identity required. */
    path: string;
    upstream: { upstream: string; path: string; mask?: string };
    pos: SourcePos;
  };
  /** Session tokens wxgw signs at login; required with `login`. */
  session?: {
    /** HS256 key bytes (utf-8 of the resolved value, at least 32 bytes). */
    signing_key: string;
    /** Milliseconds a session token is valid. */
    ttl: number;
    issuer: string;
    /** A replaced signing key whose tokens still verify until `until` (epoch ms). */
    previous?: { signing_key?: string; until: number };
  };
  /** Tokens the legacy backend already issues. */
  jwt?: {
    /** Exactly one key source. */
    key: { kind: 'secret'; secret: string } | { kind: 'public_key'; pem: string; file: string } | { kind: 'jwks'; jwks: unknown; file: string };
    issuer?: string;
    audience?: string;
    /** Claim holding the openid (default `openid`). */
    openid_claim: string;
    /** Allowed `alg` values; default by key kind (HS256/384/512 for secrets, RS/PS/ES for keys). */
    algorithms?: string[];
    /** Milliseconds of clock tolerance for exp/nbf (default 30 s). */
    clock_tolerance: number;
  };
  /** Where the token is read from: a header (default `authorization`, Bearer scheme) or a cookie. */
  token: { header: string } | { cookie: string };
  /** Lower-case header carrying the verified openid to the upstream (default `x-wx-openid`). */
  upstream_header: string;
  /** Lower-case header carrying the verified unionid to the upstream on login (default `x-wx-unionid`). */
  unionid_header: string;
  pos: SourcePos;
}

export interface RateLimitConfig {
  key: 'openid' | 'ip';
  limit: number;
  /** Milliseconds. */
  window: number;
  /** Used when the request has no verified openid; absent means such requests are not limited by this rule. */
  fallback_key?: 'ip';
  /** `route`: each route counts its own budget (default); `global`: every route with this rule shares one. */
  scope: 'route' | 'global';
  /** IPv6 clients are counted by this prefix of their address (default 64: one budget per /64). */
  ipv6_prefix: number;
  /** Present when the limit is in report mode (its own `mode: report`, or the route's `report: [rate_limit]`). */
  mode?: 'report';
  pos: SourcePos;
}

export interface PartialRule {
  keep_start: number;
  keep_end: number;
  /** One character (default `*`). */
  char: string;
}

/** A rule target: a key name matched at any depth, or a path such as `$.data.user.phone` / `$.list[*].idcard`. */
export type MaskTarget = { kind: 'key'; key: string } | { kind: 'path'; path: (string | '*')[]; text: string };

export type MaskDetector = 'cn_mobile' | 'cn_idcard' | 'bank_card' | 'email';

export interface MaskProfileConfig {
  name: string;
  drop: MaskTarget[];
  partial: { target: MaskTarget; rule: PartialRule }[];
  replace: { target: MaskTarget; value: string }[];
  hash: MaskTarget[];
  /** HMAC-SHA256 key for `hash`; required when `hash` is not empty. */
  hash_key?: string;
  detect: MaskDetector[];
  /** Extra lower-case media types (without parameters) whose bodies are masked as JSON. */
  content_types: string[];
  /** Bodies up to this many bytes are masked in one pass; larger ones as a stream (default 1 MiB). */
  stream_above: number;
  /** `fold` (absent: fold): key and path names match whatever their case, `_` and `-`; `exact`: byte for byte. */
  key_match?: 'fold' | 'exact';
  /** Response headers this profile removes, besides those named like a masked key. */
  headers?: MaskHeadersConfig;
  pos: SourcePos;
}

/**
 * `mask: { by, profiles, default }`: which profile a verified caller gets. `default` is the
 * RouteConfig's `mask`; an unverified caller, or one no entry picks, always gets that.
 */
export interface MaskChoiceConfig {
  /** A claim of the verified token (matched exactly), or the verified openid's `openid_lists` entry. */
  by: { kind: 'claim'; claim: string } | { kind: 'openid_list' };
  /**
   * In the order written. `value`: the claim value, or the openid list's name with its `openids`.
   * `profile`: a mask_profiles name, or `off` (unmasked).
   */
  choices: { value: string; openids?: string[]; profile: string }[];
  pos: SourcePos;
}

export interface MaskHeadersConfig {
  /** Lower-case header names removed from the answer. */
  drop: string[];
  /** Cookie names whose `Set-Cookie` lines are removed (compared as key names are). */
  drop_cookies: string[];
}

export interface WechatCallbackConfig {
  /** The `wechat.apps` name whose secrets verify the route; absent: the default app. */
  app?: string;
  decrypt: boolean;
  /** Milliseconds a callback's timestamp may differ from the gateway's clock (default 300 s). */
  max_skew: number;
  /** Largest callback body in bytes (default 64 KiB). */
  max_body: number;
  /** `delivery: async` (answered at once, delivered from the queue: docs/policy.md); absent: sync. */
  async?: AsyncDeliveryConfig;
  pos: SourcePos;
}

export interface WechatPayNotifyConfig {
  decrypt: boolean;
  max_skew: number;
  max_body: number;
  async?: AsyncDeliveryConfig;
  pos: SourcePos;
}

/** A callback route with `delivery: async`: its `retry` and `dedupe_window`. */
export interface AsyncDeliveryConfig {
  retry: DeliveryRetryConfig;
  /** Milliseconds an idempotency key is remembered (default 1 h for pushes, 25 h for Pay, which retries for a day). */
  dedupe_window: number;
}

/** A callback route's `retry`. */
export interface DeliveryRetryConfig {
  /** Attempts before the message is a dead letter (default 8). */
  attempts: number;
  /** Milliseconds waited after the first failed attempt, doubling per attempt (default 1 s). */
  backoff: number;
  /** Milliseconds, the longest wait (default 5 min). */
  max_backoff: number;
}

/** `store.delivery_queue`: the queue of async callbacks, read at start (a reload keeps the queue). */
export interface DeliveryQueueConfig {
  /** Deliveries in flight at once in one instance (default 16). */
  concurrency: number;
  /** Milliseconds after which a message held by a silent instance is taken over (default 60 s). */
  takeover_after: number;
  /** Dead letters kept per route (default 10000). */
  dead_letters: number;
}

export interface ServerConfig {
  /**
   * null for `https: off`: TLS ends at a load balancer in `trusted_proxies`, and the `http`
   * listener (then always present, mode redirect) proxies what it forwards as https.
   */
  https: { listen: ListenAddress; pos: SourcePos } | null;
  http: { listen: ListenAddress; mode: 'redirect' | 'off'; pos: SourcePos } | null;
  admin: { listen: ListenAddress; pos: SourcePos } | null;
  /** The WeChat API egress listener (plain HTTP, loopback or pod-local) the backend calls WeChat through; absent without one. */
  egress?: { listen: ListenAddress; pos: SourcePos };
  /** Host used in redirects when the request's Host is not a name the certificates cover. */
  public_host?: string;
  /** Port redirects point at, when clients reach HTTPS on another port than the listener's. */
  public_port?: number;
  /** CIDRs (normalised strings) whose X-Forwarded-* and X-Request-Id headers are believed. */
  trusted_proxies: string[];
  /** Lower-case upstream response headers never passed on (default `server`, `x-powered-by`). */
  strip_response_headers: string[];
  limits: {
    /** Largest request body in bytes. */
    body: number;
    /** Milliseconds a client has to complete the TLS handshake before its connection is closed. */
    handshake_timeout: number;
    /** Milliseconds a client has to send the complete request headers. */
    headers_timeout: number;
    /** Milliseconds a client has to send the whole request, headers and body. */
    request_timeout: number;
    /** Milliseconds a client that stopped reading has to take more of a waiting answer. */
    send_timeout: number;
    /** Concurrent streams one HTTP/2 connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS). */
    http2_streams: number;
    /** Streams a client may reset on one HTTP/2 connection within 10 s before it is closed (rapid reset). */
    http2_resets: number;
  };
  /** Whether the HTTPS listener offers h2 by ALPN beside http/1.1 (default true). */
  http2: boolean;
  /** Milliseconds in-flight requests get to finish after SIGTERM before their connections are cut. */
  shutdown_timeout: number;
  /** Milliseconds between SIGTERM (/readyz 503) and the listeners refusing new connections. */
  drain_delay: number;
  /** `server.workers`: processes serving traffic (cluster/); absent means `auto`, one per core up to cluster/primary.ts's AUTO_WORKERS_MAX. */
  workers?: number | 'auto';
  /** How request paths are read before routing (net/path.ts). */
  paths: {
    /** `;` path parameters: refused, stripped (for matching and upstream alike), or kept. */
    semicolons: 'reject' | 'strip' | 'keep';
  };
  /** `server.headers`: request header names a backend could fold onto another name. */
  headers: { underscores: HeaderNamePolicy };
  /** Lower-case client claims (net/header-names.ts CLIENT_CLAIMS) kept when a trusted proxy sends them. */
  trusted_headers: string[];
  /** `server.request_id`: the lower-case header carrying the request id, and whether a trusted proxy's is kept. */
  request_id: { header: string; trust: boolean };
  /** `server.log`: the key that hashes the verified openid into the access log; absent: no user field. */
  log: { openid_hmac_key?: string };
}

/** What a request header name with `_` (or another character but letters, digits and `-`) gets. */
export type HeaderNamePolicy = 'drop' | 'reject' | 'allow';

export interface PolicyConfig {
  version: 1;
  /** Absolute path of the policy file. */
  file: string;
  server: ServerConfig;
  /** Defaults without certificates when `server.https` is off and the policy has no `tls`. */
  tls: TlsConfig;
  upstreams: Map<string, UpstreamConfig>;
  routes: RouteConfig[];
  /** What `defaults` gives routes that do not say otherwise; the login endpoint takes these. */
  defaults: {
    allow?: AddressList;
    deny: string[];
    cors?: CorsConfig;
    rate_limits: RateLimitConfig[];
    mask?: string;
    mask_by?: MaskChoiceConfig;
    report?: ReportRule[];
  };
  store: StoreConfig;
  wechat?: WechatConfig;
  wechatpay?: WechatPayConfig;
  identity?: IdentityConfig;
  mask_profiles: Map<string, MaskProfileConfig>;
  /** Strings read from files with ${file:...}, by dotted key path; absent when there are none. */
  file_references?: Map<string, FileReference>;
  alerts?: AlertsConfig;
  tracing?: TracingConfig;
}

/** A string of the policy read (partly) from files: what a reload watches, and keeps when they cannot be read. */
export interface FileReference {
  /** Absolute paths, in the order the string names them. */
  files: string[];
  /** The resolved string. A secret: never logged. */
  value: string;
  /** Set when the files could not be read at the last load: `value` is the one read before, and this says why. */
  unreadable?: string;
}

export type Severity = 'error' | 'warning';

/** One finding about the policy or a file it references. */
export interface Diagnostic {
  severity: Severity;
  file: string;
  line: number;
  col: number;
  /** Dotted key path, empty for the document itself. */
  path: string;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.file}:${d.line}:${d.col}`;
  const tag = d.severity === 'warning' ? 'warning: ' : '';
  return `${where}  ${d.path || '(document)'}  ${tag}${d.message}`;
}

/** Thrown when a policy cannot be used; carries every error found, not only the first. */
export class PolicyError extends Error {
  readonly diagnostics: Diagnostic[];
  /**
   * The TLS section, when it is sound though something else is wrong, so its certificates can be
   * checked in the same pass and every error shown at once.
   */
  readonly tls: TlsConfig | undefined;
  constructor(diagnostics: Diagnostic[], tls?: TlsConfig) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super(
      `policy rejected with ${errors.length} error${errors.length === 1 ? '' : 's'}:\n` +
        diagnostics.map(formatDiagnostic).join('\n'),
    );
    this.name = 'PolicyError';
    this.diagnostics = diagnostics;
    this.tls = tls;
  }
}
