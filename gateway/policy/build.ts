// Validated plain data -> PolicyConfig. Runs only on a policy with no errors, so every value
// here has the shape the schema and the checks promised; parsing cannot fail any more.

import { parseCidr, parseHost, parseListen, parseUpstreamUrl } from './addresses.js';
import { resolveFrom } from './files.js';
import { formatPath, type KeyPath } from './key-path.js';
import { parseDuration, parseSize, type Parsed } from './units.js';
import type { ListenAddress, PolicyConfig, RouteConfig, SourcePos, UpstreamConfig } from './types.js';
import type { Locator } from './yaml-source.js';

/** Defaults as the policy would spell them; config/policy.schema.json documents the same ones. */
export const DEFAULTS = {
  http_mode: 'redirect',
  body: '1mb',
  headers_timeout: '10s',
  request_timeout: '30s',
  min_version: 'TLSv1.2',
  roots: 'system',
  expiry_warning: '21d',
  upstream_timeout: '30s',
} as const;

/** The policy as written, once validated (see config/policy.schema.json). */
interface RawPolicy {
  version: 1;
  server: {
    https: { listen: string };
    http?: { listen: string; mode?: 'redirect' | 'off' };
    admin?: { listen: string };
    public_host?: string;
    trusted_proxies?: string[];
    limits?: { body?: string; headers_timeout?: string; request_timeout?: string };
  };
  tls: {
    min_version?: 'TLSv1.2' | 'TLSv1.3';
    roots?: string;
    expiry_warning?: string;
    certificates: { cert: string; key: string; passphrase?: string }[];
  };
  upstreams: Record<string, { url: string; timeout?: string }>;
  routes: {
    name: string;
    match: { path?: string; path_prefix?: string; methods?: string[]; host?: string };
    upstream: string;
    timeout?: string;
  }[];
}

function sure<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`wxgw: policy value passed validation but does not parse: ${parsed.why}`);
  return parsed.value;
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
  const { server, tls } = raw;
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

  const routes = raw.routes.map((r, i): RouteConfig => {
    const { path, path_prefix, methods, host } = r.match;
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
      pos: pos(['routes', i]),
    };
  });

  const roots = tls.roots ?? DEFAULTS.roots;
  return {
    version: 1,
    file: ctx.file,
    server: {
      https: listener('https', server.https.listen),
      http: server.http ? { ...listener('http', server.http.listen), mode: server.http.mode ?? DEFAULTS.http_mode } : null,
      admin: server.admin ? listener('admin', server.admin.listen) : null,
      ...(server.public_host !== undefined && { public_host: sure(parseHost(server.public_host)) }),
      trusted_proxies: (server.trusted_proxies ?? []).map((cidr) => sure(parseCidr(cidr))),
      limits: {
        body: sure(parseSize(limits.body ?? DEFAULTS.body)),
        headers_timeout: sure(parseDuration(limits.headers_timeout ?? DEFAULTS.headers_timeout)),
        request_timeout: sure(parseDuration(limits.request_timeout ?? DEFAULTS.request_timeout)),
      },
    },
    tls: {
      min_version: tls.min_version ?? DEFAULTS.min_version,
      roots: roots === 'system' ? 'system' : { bundle: resolveFrom(ctx.baseDir, roots) },
      expiry_warning: sure(parseDuration(tls.expiry_warning ?? DEFAULTS.expiry_warning)),
      certificates: tls.certificates.map((c, i) => ({
        cert: resolveFrom(ctx.baseDir, c.cert),
        key: resolveFrom(ctx.baseDir, c.key),
        ...(c.passphrase !== undefined && { passphrase: c.passphrase }),
        pos: pos(['tls', 'certificates', i]),
      })),
      pos: pos(['tls'], 'key'),
    },
    upstreams,
    routes,
  };
}
