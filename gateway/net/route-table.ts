// The compiled route table. A request is looked up on its normalised path folded by matchKey
// (net/path.ts), so a route covers every case spelling of its path, with or without a final `/`. Precedence, most specific
// first: an exact path beats any prefix, a longer prefix beats a shorter one, and on the same
// path a host-bound route beats a host-less one. The routes of that one most specific match own
// the request: a route listing the method (HEAD counts as GET unless a route lists HEAD), else a
// route of the same match taking any method, else 405 with the methods they take. The request
// never falls through to a looser route. Built once per policy load, only read after.
import { matchKey, parentPrefix } from './path.js';
import type { RouteConfig } from '../types/policy.js';

export interface CompiledRoute<T> {
  readonly config: RouteConfig;
  readonly target: T;
}

/** The routes sharing one match (path or prefix, and host): they decide between them by method. */
interface Group<T> {
  readonly byMethod: ReadonlyMap<string, CompiledRoute<T>>;
  readonly any: CompiledRoute<T> | undefined;
  /** What `Allow` says when neither takes the method. */
  readonly allow: readonly string[];
}

/** The groups of one path: per host, and host-less. */
interface Level<T> {
  readonly byHost: Map<string, Group<T>>;
  anyHost: Group<T> | undefined;
}

export type RouteLookup<T> =
  | { kind: 'found'; route: CompiledRoute<T> }
  | { kind: 'method_not_allowed'; allow: readonly string[] }
  | { kind: 'not_found' };

/** First listed wins a method; HEAD goes where GET goes unless a route lists it itself. */
function group<T>(routes: readonly CompiledRoute<T>[]): Group<T> {
  const byMethod = new Map<string, CompiledRoute<T>>();
  let any: CompiledRoute<T> | undefined;
  for (const route of routes) {
    const methods = route.config.match.methods;
    if (methods === undefined) any ??= route;
    else for (const m of methods) if (!byMethod.has(m)) byMethod.set(m, route);
  }
  const get = byMethod.get('GET');
  if (get && !byMethod.has('HEAD')) byMethod.set('HEAD', get);
  return Object.freeze({ byMethod, any, allow: Object.freeze([...byMethod.keys()].sort()) });
}

function choose<T>(g: Group<T>, method: string): RouteLookup<T> {
  const route = g.byMethod.get(method) ?? g.any;
  return route ? { kind: 'found', route } : { kind: 'method_not_allowed', allow: g.allow };
}

/** Files routes by key, then host, keeping their order, and compiles each group. */
function levels<T>(routes: readonly { key: string; route: CompiledRoute<T> }[]): Map<string, Level<T>> {
  const raw = new Map<string, Map<string | undefined, CompiledRoute<T>[]>>();
  for (const { key, route } of routes) {
    let hosts = raw.get(key);
    if (!hosts) raw.set(key, (hosts = new Map()));
    const host = route.config.match.host;
    const list = hosts.get(host);
    if (list) list.push(route);
    else hosts.set(host, [route]);
  }
  const out = new Map<string, Level<T>>();
  for (const [key, hosts] of raw) {
    const level: Level<T> = { byHost: new Map(), anyHost: undefined };
    for (const [host, list] of hosts) {
      if (host === undefined) level.anyHost = group(list);
      else level.byHost.set(host, group(list));
    }
    out.set(key, level);
  }
  return out;
}

export class RouteTable<T> {
  private readonly exact: ReadonlyMap<string, Level<T>>;
  private readonly prefixes: ReadonlyMap<string, Level<T>>;

  constructor(routes: readonly CompiledRoute<T>[]) {
    const exact: { key: string; route: CompiledRoute<T> }[] = [];
    const prefixes: { key: string; route: CompiledRoute<T> }[] = [];
    for (const route of routes) {
      const { path, path_prefix } = route.config.match;
      (path !== undefined ? exact : prefixes).push({ key: matchKey((path ?? path_prefix)!), route });
    }
    this.exact = levels(exact);
    this.prefixes = levels(prefixes);
  }

  /** `path` must already be normalised; `host` in the normal form of net/host.ts, '' for none. */
  lookup(method: string, host: string, path: string): RouteLookup<T> {
    const key = matchKey(path);
    const exact = this.exact.get(key);
    const hit = exact && (exact.byHost.get(host) ?? exact.anyHost);
    if (hit) return choose(hit, method);
    if (this.prefixes.size === 0) return { kind: 'not_found' };
    // Every prefix covering the path ends at one of its segment boundaries: one look-up each.
    for (let p: string | undefined = key; p !== undefined; p = parentPrefix(p)) {
      const level = this.prefixes.get(p);
      const g = level && (level.byHost.get(host) ?? level.anyHost);
      if (g) return choose(g, method);
    }
    return { kind: 'not_found' };
  }
}
