// Validated plain data -> PolicyConfig. Runs only on a policy with no errors, so every value
// here has the shape the schema and the checks promised; parsing cannot fail any more.

import { isAddressText } from './access.js';
import { parseCidr, parseClientCidr, parseHost, parseListen, parseOrigin, parseUpstreamUrl } from './addresses.js';
import { resolveFrom } from './files.js';
import { formatPath, type KeyPath } from './key-path.js';
import { parseDuration, parseSeconds, parseSize, type Parsed } from './units.js';
import type {
  AddressList,
  CorsConfig,
  ListenAddress,
  PolicyConfig,
  RouteConfig,
  SourcePos,
  UpstreamConfig,
} from './types.js';
import type { Locator } from './yaml-source.js';

/** Defaults as the policy would spell them; config/policy.schema.json documents the same ones. */
export const DEFAULTS = {
  http_mode: 'redirect',
  body: '1mb',
  headers_timeout: '10s',
  request_timeout: '30s',
  shutdown_timeout: '25s',
  min_version: 'TLSv1.2',
  roots: 'system',
  expiry_warning: '21d',
  upstream_timeout: '30s',
  strip_response_headers: ['server', 'x-powered-by'],
  cors_methods: ['GET', 'HEAD', 'POST'],
  cors_max_age: '10m',
  json_charset: true,
} as const;

type RawAllow = 'any' | string[];

interface RawCors {
  origins: string[];
  credentials?: boolean;
  methods?: string[];
  headers?: string[];
  expose_headers?: string[];
  max_age?: string;
}

interface RawAccess {
  allow?: RawAllow;
  deny?: string[];
  cors?: RawCors;
}

/** The policy as written, once validated (see config/policy.schema.json). */
interface RawPolicy {
  version: 1;
  server: {
    https: { listen: string } | 'off';
    http?: { listen: string; mode?: 'redirect' | 'off' };
    admin?: { listen: string };
    public_host?: string;
    public_port?: number;
    trusted_proxies?: string[];
    strip_response_headers?: string[];
    limits?: { body?: string; headers_timeout?: string; request_timeout?: string };
    shutdown_timeout?: string;
  };
  tls?: {
    min_version?: 'TLSv1.2' | 'TLSv1.3';
    roots?: string;
    expiry_warning?: string;
    certificates?: { cert: string; key: string; passphrase?: string }[];
    hsts?: { max_age: string; include_subdomains?: boolean; preload?: boolean };
  };
  ip_lists?: Record<string, string[]>;
  defaults?: RawAccess;
  upstreams: Record<string, { url: string; timeout?: string }>;
  routes: (RawAccess & {
    name: string;
    match: { path?: string; path_prefix?: string; methods?: string[]; host?: string };
    upstream: string;
    timeout?: string;
    json_charset?: boolean;
  })[];
}

function sure<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`wxgw: policy value passed validation but does not parse: ${parsed.why}`);
  return parsed.value;
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

export interface BuildContext {
  /** Absolute path of the policy file. */
  file: string;
  /** The file as named by the caller, for positions. */
  shownFile: string;
  baseDir: string;
  locator: Locator;
}

export function buildConfig(data: unknown, ctx: BuildContext): PolicyConfig {
  const raw = data as RawPolicy; // guaranteed by the schema and checks that found no error
  const pos = (at: KeyPath, anchor: 'key' | 'value' = 'value'): SourcePos => ({
    file: ctx.shownFile,
    ...ctx.locator.position(at, anchor),
    path: formatPath(at),
  });
  const listener = (name: 'https' | 'http' | 'admin', listen: string): { listen: ListenAddress; pos: SourcePos } => ({
    listen: sure(parseListen(listen)),
    pos: pos(['server', name, 'listen']),
  });
  const { server } = raw;
  // Optional only with `https: off`, where the checks allowed leaving it out.
  const tls = raw.tls ?? {};
  const limits = server.limits ?? {};

  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, u] of Object.entries(raw.upstreams)) {
    upstreams.set(name, {
      name,
      url: sure(parseUpstreamUrl(u.url)),
      timeout: sure(parseDuration(u.timeout ?? DEFAULTS.upstream_timeout)),
      pos: pos(['upstreams', name], 'key'),
    });
  }

  const lists = raw.ip_lists ?? {};
  const defaults = raw.defaults ?? {};
  const routes = raw.routes.map((r, i): RouteConfig => {
    const { path, path_prefix, methods, host } = r.match;
    // A route key replaces the default key whole; the checks made sure one of them gives allow.
    const allow = r.allow ?? defaults.allow!;
    const deny = r.deny ?? defaults.deny ?? [];
    const cors = r.cors ?? defaults.cors;
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
      pos: pos(['routes', i]),
    };
  });

  const roots = tls.roots ?? DEFAULTS.roots;
  return {
    version: 1,
    file: ctx.file,
    server: {
      https: server.https === 'off' ? null : listener('https', server.https.listen),
      http: server.http ? { ...listener('http', server.http.listen), mode: server.http.mode ?? DEFAULTS.http_mode } : null,
      admin: server.admin ? listener('admin', server.admin.listen) : null,
      ...(server.public_host !== undefined && { public_host: sure(parseHost(server.public_host)) }),
      ...(server.public_port !== undefined && { public_port: server.public_port }),
      trusted_proxies: (server.trusted_proxies ?? []).map((cidr) => sure(parseCidr(cidr))),
      strip_response_headers: lowerUnique(server.strip_response_headers ?? DEFAULTS.strip_response_headers),
      limits: {
        body: sure(parseSize(limits.body ?? DEFAULTS.body)),
        headers_timeout: sure(parseDuration(limits.headers_timeout ?? DEFAULTS.headers_timeout)),
        request_timeout: sure(parseDuration(limits.request_timeout ?? DEFAULTS.request_timeout)),
      },
      shutdown_timeout: sure(parseDuration(server.shutdown_timeout ?? DEFAULTS.shutdown_timeout)),
    },
    tls: {
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
    },
    upstreams,
    routes,
  };
}
