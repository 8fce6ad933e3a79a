// Route checks the schema cannot express: unique names, paths that can match, known methods,
// defined upstreams, routes that another route always wins over, and method-bound routes that
// now answer 405 where a looser route would have served. The winner is decided as in
// net/route-table.ts: paths compared as matchKey folds them (without case, `/x/` is `/x`), exact
// path over prefix, longer prefix over shorter, then host-bound over host-less; within one match,
// the first route listing the method, then the first taking any method.

import { METHODS } from 'node:http';
import { parseHost } from './addresses.js';
import { isRecord, type KeyPath } from './key-path.js';
import { matchKey, parentPrefix } from '../net/path.js';
import { neverMatches } from './match-path.js';
import { show, type Reporter } from './report.js';
import { closest } from './suggest.js';

const KNOWN_METHODS = new Set(METHODS);

/** The part of a route that decides which requests reach it, once it is known to be valid. */
interface MatchKey {
  index: number;
  name: string;
  kind: 'path' | 'path_prefix';
  /** As written. */
  path: string;
  /** As looked up (net/path.ts): without case or a trailing `/`. */
  key: string;
  /** '' for a host-less route. */
  host: string;
  methods: Set<string> | undefined;
  route: Record<string, unknown>;
}

/** What the policy says about `;` in request paths, and where routes take their defaults from. */
export interface RouteContext {
  semicolons: 'reject' | 'strip' | 'keep';
  defaults: Record<string, unknown>;
}

/** The methods whose fate the ownership warning looks at. */
const COMMON_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Methods no route forwards (proxy/routing.ts). */
const NEVER_FORWARDED = new Set(['TRACE', 'CONNECT']);

/** Upper-cases and checks a list of methods; undefined when any is wrong (and reported). */
export function checkMethods(value: unknown, at: KeyPath, report: Reporter): Set<string> | undefined {
  if (!Array.isArray(value)) return undefined;
  const methods = new Set<string>();
  let ok = true;
  value.forEach((item: unknown, i) => {
    if (typeof item !== 'string') {
      ok = false;
      return;
    }
    const method = item.toUpperCase();
    if (!KNOWN_METHODS.has(method)) {
      const near = closest(method, KNOWN_METHODS);
      report.error([...at, i], `${show(item)} is not an HTTP method${near ? `; did you mean \`${near}\`?` : ''}`);
      ok = false;
    } else if (methods.has(method)) {
      report.error([...at, i], `${show(item)} is listed twice`);
      ok = false;
    }
    methods.add(method);
  });
  return ok && methods.size > 0 ? methods : undefined;
}

/** Why a path in normal form still never matches under `server.paths.semicolons`. */
function semicolonWhy(path: string, mode: RouteContext['semicolons']): string | undefined {
  if (mode === 'keep' || !/;|%3b/i.test(path)) return undefined;
  if (mode === 'reject') return 'can never match: requests whose path holds `;` are refused (server.paths.semicolons: reject)';
  return `can never match: \`;...\` is removed from request paths before matching (server.paths.semicolons: strip); write \`${path.replace(/(?:;|%3b)[^/]*/gi, '')}\``;
}

type Match = Omit<MatchKey, 'index' | 'name' | 'route'>;

/** Checks one route's match; returns its key when the match is valid enough to compare. */
function checkMatch(match: unknown, at: KeyPath, report: Reporter, ctx: RouteContext): Match | undefined {
  if (!isRecord(match)) return undefined;
  const kinds = (['path', 'path_prefix'] as const).filter((k) => match[k] !== undefined);
  let valid = kinds.length === 1;
  if (kinds.length === 2) report.error(at, 'sets both `path` and `path_prefix`; keep exactly one');
  if (kinds.length === 0) {
    report.error(at, 'needs exactly one of `path` (an exact path) or `path_prefix`', {
      missing: [
        [...at, 'path'],
        [...at, 'path_prefix'],
      ],
    });
  }
  for (const kind of kinds) {
    const path = match[kind];
    const why = typeof path === 'string' ? (neverMatches(path) ?? semicolonWhy(path, ctx.semicolons)) : 'is not a string';
    if (why) {
      if (typeof path === 'string') report.error([...at, kind], `${show(path)} ${why}`);
      valid = false;
    }
  }
  let methods: Set<string> | undefined;
  if (match.methods !== undefined) {
    methods = checkMethods(match.methods, [...at, 'methods'], report);
    valid &&= methods !== undefined;
    (Array.isArray(match.methods) ? match.methods : []).forEach((m: unknown, i) => {
      if (typeof m === 'string' && NEVER_FORWARDED.has(m.toUpperCase())) {
        report.error([...at, 'methods', i], `${show(m)} is refused on every route (405), so no request with it is ever forwarded; remove it`);
        valid = false;
      }
    });
  }
  let host = '';
  if (match.host !== undefined) {
    const parsed = typeof match.host === 'string' ? parseHost(match.host) : undefined;
    if (parsed?.ok) host = parsed.value;
    else valid = false; // the schema has said why
  }
  if (!valid) return undefined;
  const kind = kinds[0]!;
  const path = match[kind] as string;
  return { kind, path, key: matchKey(path), host, methods };
}

function lineOf(report: Reporter, index: number): string {
  return `line ${report.line(['routes', index])}`;
}

function where(k: Match): string {
  return `${k.kind} ${k.key} ${k.host}`;
}

function describe(k: MatchKey): string {
  const path = k.kind === 'path' ? `\`${k.path}\`` : `\`${k.path}\`...`;
  return k.host ? `${path} on ${k.host}` : path;
}

/** The routes sharing one match; they divide its requests between them by method. */
interface Group {
  members: MatchKey[];
  any: MatchKey | undefined;
  /** Each method to the first route listing it (HEAD implied by GET is not listed). */
  byMethod: Map<string, MatchKey>;
}

/** When two spellings are one match, the message says so: the reader wrote two paths. */
function sameSpelling(key: MatchKey, first: MatchKey): string {
  if (key.path === first.path) return '';
  const why = key.path.toLowerCase() === first.path.toLowerCase() ? 'paths match without regard to case' : 'a trailing `/` does not change the match';
  return ` (${why}, so \`${key.path}\` and \`${first.path}\` are one match)`;
}

/**
 * A route no request can reach is refused; one that loses only some methods is a warning.
 * Routes are grouped by match as the route table groups them, so this is linear in routes.
 */
function checkShadowing(keys: MatchKey[], report: Reporter): Map<string, Group> {
  const groups = new Map<string, Group>();
  for (const key of keys) {
    const id = where(key);
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { members: [], any: undefined, byMethod: new Map() }));
    g.members.push(key);
    const at = ['routes', key.index, 'match'];
    if (key.methods === undefined) {
      if (!g.any) {
        g.any = key;
        continue;
      }
      report.error(
        at,
        `route \`${key.name}\` can never be chosen: route \`${g.any.name}\` (${lineOf(report, g.any.index)}) has the same match and is listed first${sameSpelling(key, g.any)}`,
      );
      continue;
    }
    const takenBy = new Map<string, MatchKey>();
    for (const method of key.methods) {
      const winner = g.byMethod.get(method);
      if (winner) takenBy.set(method, winner);
      else g.byMethod.set(method, key);
    }
    if (takenBy.size === 0) continue;
    const winners = [...new Set(takenBy.values())];
    const names = winners.map((w) => `\`${w.name}\` (${lineOf(report, w.index)})`).join(', ');
    const lost = [...takenBy.keys()].join(', ');
    const note = sameSpelling(key, winners[0]!);
    if (takenBy.size === key.methods.size) {
      report.error(
        at,
        `route \`${key.name}\` can never be chosen: every method it takes (${lost}) goes to ${names}, listed first with the same path and host${note}`,
      );
    } else {
      report.warn(at, `route \`${key.name}\` never receives ${lost}: ${names}, listed first with the same path and host, takes it${note}`);
    }
  }
  return groups;
}

/** The keys of a route that decide what it lets through; each falls back to `defaults`. */
const GUARD_KEYS = ['allow', 'deny', 'cors', 'rate_limit', 'identity_required', 'mask'] as const;
const OWN_GUARD_KEYS = ['wechat_callback', 'wechatpay_notify'] as const;

function guardsDiffer(a: Record<string, unknown>, b: Record<string, unknown>, defaults: Record<string, unknown>): string[] {
  const same = (x: unknown, y: unknown): boolean => JSON.stringify(x ?? null) === JSON.stringify(y ?? null);
  return [
    ...GUARD_KEYS.filter((k) => !same(a[k] ?? defaults[k], b[k] ?? defaults[k])),
    ...OWN_GUARD_KEYS.filter((k) => !same(a[k], b[k])),
  ];
}

/** The route that would take `method` from group `g`: its own, or (HEAD) its GET route, or any. */
function takes(g: Group, method: string): MatchKey | undefined {
  return g.byMethod.get(method) ?? (method === 'HEAD' ? g.byMethod.get('GET') : undefined) ?? g.any;
}

/**
 * A route listing methods owns its paths: the other methods get 405 from it rather than the
 * looser route they would otherwise fall to. When that route would have treated them differently
 * (other addresses, identity, limits, masking), the policy's author should know which it is.
 */
function checkOwnership(groups: Map<string, Group>, report: Reporter, defaults: Record<string, unknown>): void {
  for (const g of groups.values()) {
    if (g.any) continue;
    const owner = g.members[0]!;
    const own = new Set(g.byMethod.keys());
    if (own.has('GET')) own.add('HEAD');
    const others = COMMON_METHODS.filter((m) => !own.has(m));
    // The groups a request on these paths would have fallen to, most specific first.
    const fallbacks: Group[] = [];
    const push = (kind: string, key: string): void => {
      if (owner.host) {
        const hosted = groups.get(`${kind} ${key} ${owner.host}`);
        if (hosted && hosted !== g) fallbacks.push(hosted);
      }
      const hostless = groups.get(`${kind} ${key} `);
      if (hostless && hostless !== g) fallbacks.push(hostless);
    };
    if (owner.kind === 'path') push('path', owner.key);
    for (let p: string | undefined = owner.key; p !== undefined; p = parentPrefix(p)) push('path_prefix', p);
    let reached: MatchKey | undefined;
    for (const f of fallbacks) {
      reached = others.map((m) => takes(f, m)).find((r) => r !== undefined);
      if (reached) break;
    }
    if (!reached) continue;
    const differ = new Set(g.members.flatMap((m) => guardsDiffer(m.route, reached!.route, defaults)));
    if (differ.size === 0) continue;
    report.warn(
      ['routes', owner.index, 'match'],
      `route \`${owner.name}\` takes only ${[...own].sort().join(', ')} on ${describe(owner)}, so every other method there gets 405 from it instead of reaching route \`${reached.name}\` (${lineOf(report, reached.index)}), which differs in ${[...differ].join(', ')}; to let other methods through, list them on a route with the same match`,
    );
  }
}

/** `upstreamNames` is undefined when `upstreams` itself is missing or malformed (and reported). */
export function checkRoutes(routes: unknown, upstreamNames: readonly string[] | undefined, report: Reporter, ctx: RouteContext): void {
  if (!Array.isArray(routes)) return;
  const names = new Map<string, number>();
  const upstreams = new Set(upstreamNames);
  const keys: MatchKey[] = [];
  routes.forEach((route: unknown, index) => {
    if (!isRecord(route)) return;
    const at = ['routes', index];
    const name = typeof route.name === 'string' ? route.name : undefined;
    if (name !== undefined) {
      const first = names.get(name);
      if (first !== undefined) {
        report.error([...at, 'name'], `duplicate route name \`${name}\`; it is already used by routes[${first}] (${lineOf(report, first)})`);
      } else names.set(name, index);
    }
    if (upstreamNames && typeof route.upstream === 'string' && route.upstream !== '' && !upstreams.has(route.upstream)) {
      const near = closest(route.upstream, upstreamNames);
      const hint = near
        ? `; did you mean \`${near}\`?`
        : upstreamNames.length > 0
          ? `; defined upstreams: ${upstreamNames.join(', ')}`
          : '';
      report.error([...at, 'upstream'], `upstream \`${route.upstream}\` is not defined under \`upstreams\`${hint}`);
    }
    const key = checkMatch(route.match, [...at, 'match'], report, ctx);
    if (key) keys.push({ ...key, index, name: name ?? `routes[${index}]`, route });
  });
  checkOwnership(checkShadowing(keys, report), report, ctx.defaults);
}
