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
  pos: SourcePos;
}

export interface ServerConfig {
  /**
   * null for `https: off`: TLS ends at a load balancer in `trusted_proxies`, and the `http`
   * listener (then always present, mode redirect) proxies what it forwards as https.
   */
  https: { listen: ListenAddress; pos: SourcePos } | null;
  http: { listen: ListenAddress; mode: 'redirect' | 'off'; pos: SourcePos } | null;
  admin: { listen: ListenAddress; pos: SourcePos } | null;
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
    /** Milliseconds a client has to send the complete request headers. */
    headers_timeout: number;
    /** Milliseconds a client has to send the whole request, headers and body. */
    request_timeout: number;
  };
  /** Milliseconds in-flight requests get to finish after SIGTERM before their connections are cut. */
  shutdown_timeout: number;
}

export interface PolicyConfig {
  version: 1;
  /** Absolute path of the policy file. */
  file: string;
  server: ServerConfig;
  /** Defaults without certificates when `server.https` is off and the policy has no `tls`. */
  tls: TlsConfig;
  upstreams: Map<string, UpstreamConfig>;
  routes: RouteConfig[];
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
  constructor(diagnostics: Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super(
      `policy rejected with ${errors.length} error${errors.length === 1 ? '' : 's'}:\n` +
        diagnostics.map(formatDiagnostic).join('\n'),
    );
    this.name = 'PolicyError';
    this.diagnostics = diagnostics;
  }
}
