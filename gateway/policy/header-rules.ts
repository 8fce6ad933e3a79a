// `request_headers` and `response_headers`: headers a route (or defaults) sets, adds or removes
// on what the upstream receives and what the client receives. They may never name a header the
// gateway owns (guards/header-plan.ts says which and why): those are its statements about
// identity, the connection and the answer, and a rule that could change them would undo a check.
// A route's rules for a header name replace the defaults' rules for that name; every other name
// keeps the defaults' rules.

import { foldHeaderName } from '../net/header-names.js';
import { gatewayRequestHeaders, gatewayResponseHeader } from '../guards/header-plan.js';
import { isRecord, type KeyPath } from './key-path.js';
import type { Reporter } from './report.js';
import type { HeaderRulesConfig } from '../types/policy.js';

/** One side's rules as written, once validated. */
export interface RawHeaderRules {
  set?: Record<string, string | number>;
  add?: Record<string, string | number>;
  remove?: string[];
}

export type Side = 'request_headers' | 'response_headers';

/** A request header is one header to a CGI backend in any folded spelling; a response header by its lower-case name. */
function nameKey(side: Side, name: string): string {
  return side === 'request_headers' ? foldHeaderName(name) : name.toLowerCase();
}

function entries(values: Record<string, string | number> | undefined): { name: string; value: string }[] {
  return Object.entries(values ?? {}).map(([name, value]) => ({ name: name.toLowerCase(), value: String(value) }));
}

/** The route's rules merged over the defaults' by header name; undefined when neither has any. */
export function mergedHeaderRules(side: Side, defaults: RawHeaderRules | undefined, route: RawHeaderRules | undefined): HeaderRulesConfig | undefined {
  if (!defaults && !route) return undefined;
  const own = new Set([...Object.keys(route?.set ?? {}), ...Object.keys(route?.add ?? {}), ...(route?.remove ?? [])].map((n) => nameKey(side, n)));
  const inherited = (name: string): boolean => !own.has(nameKey(side, name));
  const merged: HeaderRulesConfig = {
    set: [...entries(defaults?.set).filter((h) => inherited(h.name)), ...entries(route?.set)],
    add: [...entries(defaults?.add).filter((h) => inherited(h.name)), ...entries(route?.add)],
    remove: [...new Set([...(defaults?.remove ?? []).filter(inherited), ...(route?.remove ?? [])].map((n) => n.toLowerCase()))],
  };
  return merged.set.length + merged.add.length + merged.remove.length === 0 ? undefined : merged;
}

/** What Node sends as a header value without refusing it: visible ASCII, spaces and tabs. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

const VERB = { set: 'set', add: 'add to', remove: 'remove' } as const;

/**
 * Refuses rules on gateway-owned headers, values that cannot be sent, and two rules for one
 * header. `identityDefaults`: the default upstream_header and unionid_header.
 */
export function checkHeaderRules(data: Record<string, unknown>, report: Reporter, identityDefaults: readonly [string, string]): void {
  const identity = isRecord(data.identity) ? data.identity : {};
  // The default names stay refused beside configured ones: a backend moved to another header may still read X-WX-OpenID.
  const owned = [...identityDefaults, ...[identity.upstream_header, identity.unionid_header].filter((h): h is string => typeof h === 'string')];
  const requestOwned = gatewayRequestHeaders(owned);
  const places: { at: KeyPath; entry: Record<string, unknown> }[] = [];
  if (isRecord(data.defaults)) places.push({ at: ['defaults'], entry: data.defaults });
  if (Array.isArray(data.routes)) data.routes.forEach((r: unknown, i) => isRecord(r) && places.push({ at: ['routes', i], entry: r }));

  for (const { at, entry } of places) {
    for (const side of ['request_headers', 'response_headers'] as const) {
      const rules = entry[side];
      if (!isRecord(rules)) continue;
      const owner = (name: string): string | undefined =>
        side === 'request_headers' ? requestOwned.get(foldHeaderName(name)) : gatewayResponseHeader(name.toLowerCase());
      const seen = new Map<string, string>();
      const named = (op: keyof typeof VERB, name: string, where: KeyPath, anchor: 'key' | 'value'): void => {
        const why = owner(name);
        if (why) {
          report.error(where, `\`${name}\` is the gateway's own header (${why}): a rule cannot ${VERB[op]} it`, { anchor });
          return;
        }
        const key = nameKey(side, name);
        const first = seen.get(key);
        if (first !== undefined) report.error(where, `\`${name}\` already has a rule under ${first}: give each header one rule`, { anchor });
        else seen.set(key, op);
      };
      for (const op of ['set', 'add'] as const) {
        const values = rules[op];
        if (!isRecord(values)) continue;
        for (const [name, value] of Object.entries(values)) {
          named(op, name, [...at, side, op, name], 'key');
          // The value may be a resolved secret (an API key for the backend): never quoted.
          if (typeof value === 'string' && !HEADER_VALUE.test(value)) {
            report.error([...at, side, op, name], 'is not a header value: visible ASCII characters, spaces and tabs only, no line breaks');
          }
        }
      }
      if (Array.isArray(rules.remove)) {
        rules.remove.forEach((name: unknown, i) => {
          if (typeof name === 'string') named('remove', name, [...at, side, 'remove', i], 'value');
        });
      }
    }
  }
}
