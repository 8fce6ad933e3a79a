// Route checks the schema cannot express: unique names, paths that can match, known methods,
// defined upstreams, and routes that another route always wins over. The winner is decided as
// in proxy/route-table.ts: exact path over prefix, longer prefix over shorter, then host-bound
// over host-less, then method-bound over any-method, and on a tie the route listed first.

import { METHODS } from 'node:http';
import { parseHost } from './addresses.js';
import { isRecord, type KeyPath } from './key-path.js';
import { neverMatches } from './match-path.js';
import { show, type Reporter } from './report.js';
import { closest } from './suggest.js';

const KNOWN_METHODS = new Set(METHODS);

/** The part of a route that decides which requests reach it, once it is known to be valid. */
interface MatchKey {
  index: number;
  name: string;
  /** Exact paths and prefixes never compete on equal terms, so the kind is part of the key. */
  where: string;
  methods: Set<string> | undefined;
}

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

/** Checks one route's match; returns its key when the match is valid enough to compare. */
function checkMatch(match: unknown, at: KeyPath, report: Reporter): Omit<MatchKey, 'index' | 'name'> | undefined {
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
    const why = typeof path === 'string' ? neverMatches(path) : 'is not a string';
    if (why) {
      if (typeof path === 'string') report.error([...at, kind], `${show(path)} ${why}`);
      valid = false;
    }
  }
  let methods: Set<string> | undefined;
  if (match.methods !== undefined) {
    methods = checkMethods(match.methods, [...at, 'methods'], report);
    valid &&= methods !== undefined;
  }
  let host = '';
  if (match.host !== undefined) {
    const parsed = typeof match.host === 'string' ? parseHost(match.host) : undefined;
    if (parsed?.ok) host = parsed.value;
    else valid = false; // the schema has said why
  }
  return valid ? { where: `${kinds[0]} ${String(match[kinds[0]!])} host ${host}`, methods } : undefined;
}

function lineOf(report: Reporter, index: number): string {
  return `line ${report.line(['routes', index])}`;
}

/** A route no request can reach is refused; one that loses only some methods is a warning. */
function checkShadowing(keys: MatchKey[], report: Reporter): void {
  keys.forEach((key, k) => {
    const earlier = keys.slice(0, k).filter((e) => e.where === key.where && (e.methods === undefined) === (key.methods === undefined));
    if (earlier.length === 0) return;
    const at = ['routes', key.index, 'match'];
    if (key.methods === undefined) {
      const first = earlier[0]!;
      report.error(
        at,
        `route \`${key.name}\` can never be chosen: route \`${first.name}\` (${lineOf(report, first.index)}) has the same match and is listed first`,
      );
      return;
    }
    const takenBy = new Map<string, MatchKey>();
    for (const method of key.methods) {
      const winner = earlier.find((e) => e.methods!.has(method));
      if (winner) takenBy.set(method, winner);
    }
    if (takenBy.size === 0) return;
    const winners = [...new Set(takenBy.values())].map((w) => `\`${w.name}\` (${lineOf(report, w.index)})`).join(', ');
    const lost = [...takenBy.keys()].join(', ');
    if (takenBy.size === key.methods.size) {
      report.error(
        at,
        `route \`${key.name}\` can never be chosen: every method it takes (${lost}) goes to ${winners}, listed first with the same path and host`,
      );
    } else {
      report.warn(at, `route \`${key.name}\` never receives ${lost}: ${winners}, listed first with the same path and host, takes it`);
    }
  });
}

/** `upstreamNames` is undefined when `upstreams` itself is missing or malformed (and reported). */
export function checkRoutes(routes: unknown, upstreamNames: readonly string[] | undefined, report: Reporter): void {
  if (!Array.isArray(routes)) return;
  const names = new Map<string, number>();
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
    if (upstreamNames && typeof route.upstream === 'string' && route.upstream !== '' && !upstreamNames.includes(route.upstream)) {
      const near = closest(route.upstream, upstreamNames);
      const hint = near
        ? `; did you mean \`${near}\`?`
        : upstreamNames.length > 0
          ? `; defined upstreams: ${upstreamNames.join(', ')}`
          : '';
      report.error([...at, 'upstream'], `upstream \`${route.upstream}\` is not defined under \`upstreams\`${hint}`);
    }
    const key = checkMatch(route.match, [...at, 'match'], report);
    if (key) keys.push({ ...key, index, name: name ?? `routes[${index}]` });
  });
  checkShadowing(keys, report);
}
