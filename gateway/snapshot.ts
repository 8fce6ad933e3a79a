// One immutable picture of the policy in force: what request handling reads, built beside the
// old one and swapped by reference.
import type { PolicyConfig, UpstreamConfig } from './policy/types.js';
import type { LoadedCertificate } from './tls/load.js';
import { RouteTable, type CompiledRoute } from './proxy/route-table.js';
import { compileTrustedProxies, type TrustedProxies } from './net/client-address.js';

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
}

export interface Snapshot {
  readonly policy: PolicyConfig;
  readonly routes: RouteTable<RouteTarget>;
  readonly trusted: TrustedProxies;
  readonly certificates: readonly LoadedCertificate[];
  /** Host names a plain-HTTP redirect may point at: the certificates' names and public_host. */
  readonly redirectHosts: ReadonlySet<string>;
}

function upstreamTarget(u: UpstreamConfig): UpstreamTarget {
  const basePath = u.url.pathname.replace(/\/+$/, '');
  return Object.freeze({ name: u.name, origin: u.url.origin, basePath });
}

export function buildSnapshot(policy: PolicyConfig, certificates: readonly LoadedCertificate[]): Snapshot {
  const upstreams = new Map<string, UpstreamTarget>();
  for (const [name, u] of policy.upstreams) upstreams.set(name, upstreamTarget(u));

  const routes: CompiledRoute<RouteTarget>[] = policy.routes.map((r) => {
    const upstream = upstreams.get(r.upstream);
    // The validator refuses undefined upstreams; reaching this is a bug, not bad input.
    if (!upstream) throw new Error(`route ${r.name}: upstream ${r.upstream} missing after validation`);
    const timeout = r.timeout ?? policy.upstreams.get(r.upstream)!.timeout;
    return { config: r, target: Object.freeze({ name: r.name, upstream, timeout }) };
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
  });
}
