// Which of a route's mask choices a request gets, from what its identity step verified and
// nothing else: the verified openid, and the verified token's claims. Compiled once per policy
// load into one map lookup per request. Anything else (no token, a token that did not verify, a
// claim missing, of another type, or of a value no entry names) gets the fallback, the
// strictest choice.
import type { MaskChoiceConfig } from '../types/policy.js';

/** What a route's answers get for one verified caller; T is the snapshot's answer plan. */
export type MaskSelector<T> = (openid: string | undefined, claims: Readonly<Record<string, unknown>> | undefined) => T;

/**
 * `plan(profile)`: the prebuilt plan of a choice's profile (`off` included), shared by every
 * request it applies to. Claim values match exactly, case and all. A claim that is a list picks
 * the first entry, in the order the policy lists them, whose value the list holds.
 */
export function compileMaskSelector<T>(cfg: MaskChoiceConfig, plan: (profile: string) => T, fallback: T): MaskSelector<T> {
  if (cfg.by.kind === 'openid_list') {
    const byOpenid = new Map<string, T>();
    // The checks refused an openid in two lists; the first list would win if one got through.
    for (const c of cfg.choices) for (const openid of c.openids ?? []) if (!byOpenid.has(openid)) byOpenid.set(openid, plan(c.profile));
    return (openid) => (openid === undefined ? fallback : (byOpenid.get(openid) ?? fallback));
  }
  const claim = cfg.by.claim;
  const byValue = new Map<string, T>();
  for (const c of cfg.choices) if (!byValue.has(c.value)) byValue.set(c.value, plan(c.profile));
  const ordered = [...byValue.entries()];
  return (_openid, claims) => {
    const value = claims !== undefined && Object.hasOwn(claims, claim) ? claims[claim] : undefined;
    if (typeof value === 'string') return byValue.get(value) ?? fallback;
    if (Array.isArray(value)) {
      for (const [v, p] of ordered) if (value.includes(v)) return p;
    }
    return fallback;
  };
}
