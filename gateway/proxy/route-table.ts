// The compiled route table. Precedence, most specific first: an exact path beats any prefix, a
// longer prefix beats a shorter one; on equal paths a host-bound route beats a host-less one and
// a method-bound route beats an any-method one. Built once per policy load, only read after.
import type { RouteConfig } from '../policy/types.js';

export interface CompiledRoute<T> {
  readonly config: RouteConfig;
  readonly target: T;
}

interface Entry<T> {
  route: CompiledRoute<T>;
  host: string | undefined;
  methods: ReadonlySet<string> | undefined;
}

export type RouteLookup<T> =
  | { kind: 'found'; route: CompiledRoute<T> }
  | { kind: 'method_not_allowed'; allow: string[] }
  | { kind: 'not_found' };

function specificity<T>(e: Entry<T>): number {
  return (e.host ? 2 : 0) + (e.methods ? 1 : 0);
}

/** Does `path` fall under `prefix`? `/api` covers `/api` and `/api/...`, never `/apiary`. */
function underPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return prefix.endsWith('/') || path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

export class RouteTable<T> {
  private readonly exact = new Map<string, Entry<T>[]>();
  private readonly prefixes: { prefix: string; entries: Entry<T>[] }[] = [];

  constructor(routes: readonly CompiledRoute<T>[]) {
    const byPrefix = new Map<string, Entry<T>[]>();
    for (const route of routes) {
      const { match } = route.config;
      const entry: Entry<T> = {
        route,
        host: match.host,
        methods: match.methods ? new Set(match.methods) : undefined,
      };
      const bucket = match.path !== undefined ? this.exact : byPrefix;
      const key = (match.path ?? match.path_prefix)!;
      const list = bucket.get(key) ?? [];
      list.push(entry);
      bucket.set(key, list);
    }
    for (const list of [...this.exact.values(), ...byPrefix.values()]) {
      list.sort((a, b) => specificity(b) - specificity(a));
    }
    for (const [prefix, entries] of byPrefix) this.prefixes.push({ prefix, entries });
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** `path` must already be normalised; `host` lower-case without port. */
  lookup(method: string, host: string, path: string): RouteLookup<T> {
    let allow: Set<string> | undefined;
    const pick = (entries: Entry<T>[]): CompiledRoute<T> | undefined => {
      for (const e of entries) {
        if (e.host !== undefined && e.host !== host) continue;
        if (e.methods === undefined || e.methods.has(method)) return e.route;
        allow ??= new Set();
        for (const m of e.methods) allow.add(m);
      }
      return undefined;
    };
    const exact = this.exact.get(path);
    if (exact) {
      const route = pick(exact);
      if (route) return { kind: 'found', route };
    }
    for (const { prefix, entries } of this.prefixes) {
      if (!underPrefix(path, prefix)) continue;
      const route = pick(entries);
      if (route) return { kind: 'found', route };
    }
    if (allow) return { kind: 'method_not_allowed', allow: [...allow].sort() };
    return { kind: 'not_found' };
  }
}
