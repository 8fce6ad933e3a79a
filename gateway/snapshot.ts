// One immutable picture of the policy in force: what request handling reads, built beside the
// old one and swapped by reference.
import type { PolicyConfig, UpstreamConfig } from './policy/types.js';
import type { LoadedCertificate } from './tls/load.js';
import { RouteTable, type CompiledRoute } from './proxy/route-table.js';
import { compileTrustedProxies, type TrustedProxies } from './net/client-address.js';
import { compileIpAllow, type IpAllow } from './guards/ip-allow.js';
import { compileCors } from './guards/cors.js';
import { securityHeaders, type ResponsePlan } from './proxy/forwarding-headers.js';

export interface UpstreamTarget {
  readonly name: string;
  /** Scheme, host and port, e.g. `http://127.0.0.1:9000`. */
  readonly origin: string;
  /** The upstream URL's path without its trailing slash; '' for the root. */
  readonly basePath: string;
}

export interface RouteTarget {
  readonly name: string;
  readonly upstream: UpstreamTarget;
  /** Milliseconds: the route's own timeout or its upstream's. */
  readonly timeout: number;
  readonly ipAllow: IpAllow;
  /** How answers are rewritten; its `cors` is the route's compiled CORS guard. */
  readonly response: ResponsePlan;
}

export interface Snapshot {
  readonly policy: PolicyConfig;
  readonly routes: RouteTable<RouteTarget>;
  readonly trusted: TrustedProxies;
  readonly certificates: readonly LoadedCertificate[];
  /** Host names a plain-HTTP redirect may point at: the certificates' names and public_host. */
  readonly redirectHosts: ReadonlySet<string>;
  /** HSTS and nosniff, on every HTTPS answer including the gateway's own. */
  readonly securityHeaders: Readonly<Record<string, string>>;
}

function upstreamTarget(u: UpstreamConfig): UpstreamTarget {
  const basePath = u.url.pathname.replace(/\/+$/, '');
  return Object.freeze({ name: u.name, origin: u.url.origin, basePath });
}

export function buildSnapshot(policy: PolicyConfig, certificates: readonly LoadedCertificate[]): Snapshot {
  const upstreams = new Map<string, UpstreamTarget>();
  for (const [name, u] of policy.upstreams) upstreams.set(name, upstreamTarget(u));

  const security = securityHeaders(policy.tls.hsts);
  const fixed = Object.freeze(Object.entries(security));
  const strip = new Set(policy.server.strip_response_headers);

  const routes: CompiledRoute<RouteTarget>[] = policy.routes.map((r) => {
    const upstream = upstreams.get(r.upstream);
    // The validator refuses undefined upstreams; reaching this is a bug, not bad input.
    if (!upstream) throw new Error(`route ${r.name}: upstream ${r.upstream} missing after validation`);
    const timeout = r.timeout ?? policy.upstreams.get(r.upstream)!.timeout;
    const response: ResponsePlan = Object.freeze({
      strip,
      fixed,
      jsonCharset: r.json_charset,
      cors: r.cors && compileCors(r.cors),
    });
    const ipAllow = compileIpAllow(r.allow, r.deny);
    return { config: r, target: Object.freeze({ name: r.name, upstream, timeout, ipAllow, response }) };
  });

  const redirectHosts = new Set<string>();
  for (const c of certificates) for (const n of c.names) if (!n.startsWith('*.')) redirectHosts.add(n);
  if (policy.server.public_host) redirectHosts.add(policy.server.public_host.toLowerCase());

  return Object.freeze({
    policy,
    routes: new RouteTable(routes),
    trusted: compileTrustedProxies(policy.server.trusted_proxies),
    certificates: Object.freeze([...certificates]),
    redirectHosts,
    securityHeaders: security,
  });
}
