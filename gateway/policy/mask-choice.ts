// `mask: { by, profiles, default }`: the mask profile chosen by who is asking. The checks here
// make sure every name it uses exists, that the route can verify what it selects by, and that
// no openid could be picked by two entries; the build turns it into a MaskChoiceConfig.
// Whatever is not verified, or matches no entry, gets `default`: the strictest profile.

import { isRecord, type KeyPath } from './key-path.js';
import { show, type Reporter } from './report.js';
import { closest } from './suggest.js';
import type { MaskChoiceConfig, SourcePos } from '../types/policy.js';

/** A choice as written, once validated. */
export interface RawMaskChoice {
  by: string;
  profiles: Record<string, string>;
  default: string;
}

const CLAIM = 'claim.';

/** `mask` and `mask_by` of a route (or of defaults) from its `mask` as written. */
export function maskFields(
  value: string | RawMaskChoice | undefined,
  lists: Record<string, string[]> | undefined,
  pos: () => SourcePos,
): { mask?: string; mask_by?: MaskChoiceConfig } {
  if (value === undefined || value === 'off') return {};
  if (typeof value === 'string') return { mask: value };
  const by: MaskChoiceConfig['by'] = value.by.startsWith(CLAIM) ? { kind: 'claim', claim: value.by.slice(CLAIM.length) } : { kind: 'openid_list' };
  const choices = Object.entries(value.profiles).map(([key, profile]) =>
    by.kind === 'claim' ? { value: key, profile } : { value: key, openids: [...new Set(lists![key]!)], profile },
  );
  return { mask: value.default, mask_by: { by, choices, pos: pos() } };
}

/** The claim names the policy's choices select by, for the identity verifier to keep. */
export function selectedClaims(choices: readonly (MaskChoiceConfig | undefined)[]): string[] {
  const names = new Set<string>();
  for (const c of choices) if (c?.by.kind === 'claim') names.add(c.by.claim);
  return [...names];
}

export interface ChoiceContext {
  /** mask_profiles names. */
  profiles: readonly string[];
  openidLists: Record<string, unknown>;
  /** The policy's `identity` section, when it has one. */
  identity: Record<string, unknown> | undefined;
}

function profileName(report: Reporter, value: unknown, at: KeyPath, profiles: readonly string[]): void {
  if (typeof value !== 'string' || profiles.includes(value)) return;
  const near = closest(value, profiles);
  report.error(at, `${show(value)} is not defined under mask_profiles${near ? `; did you mean \`${near}\`?` : ''}`);
}

/** Checks one `mask` written as a choice; the string form is checked where it always was. */
export function checkMaskChoice(report: Reporter, value: Record<string, unknown>, at: KeyPath, ctx: ChoiceContext): void {
  if (value.default === 'off') {
    report.error([...at, 'default'], 'cannot be `off`: default is what unverified callers get, so it must be the strictest profile');
  } else profileName(report, value.default, [...at, 'default'], ctx.profiles);
  const profiles = isRecord(value.profiles) ? value.profiles : {};
  for (const [key, profile] of Object.entries(profiles)) {
    if (profile !== 'off') profileName(report, profile, [...at, 'profiles', key], ctx.profiles);
  }
  if (typeof value.by !== 'string') return;
  if (!ctx.identity) {
    report.error([...at, 'by'], 'needs an `identity` section: without one no request carries a verified identity, so every caller would get default');
    return;
  }
  if (value.by.startsWith(CLAIM)) {
    if (!isRecord(ctx.identity.jwt)) {
      report.error(
        [...at, 'by'],
        `selects by a token claim, but the policy has no \`identity.jwt\`: wxgw's own session tokens carry no ${show(value.by.slice(CLAIM.length))}; add identity.jwt, or select by \`openid_list\``,
      );
    }
    return;
  }
  if (value.by !== 'openid_list') return;
  const seen = new Map<string, string>();
  for (const key of Object.keys(profiles)) {
    const list = ctx.openidLists[key];
    if (!Array.isArray(list)) {
      const near = closest(key, Object.keys(ctx.openidLists));
      report.error([...at, 'profiles', key], `\`${key}\` is not defined under openid_lists${near ? `; did you mean \`${near}\`?` : ''}`, { anchor: 'key' });
      continue;
    }
    for (const openid of list) {
      if (typeof openid !== 'string') continue;
      const first = seen.get(openid);
      // Which of two profiles a caller in both lists gets would be a guess; say so instead.
      if (first !== undefined && first !== key) {
        report.error([...at, 'profiles', key], `lists an openid that openid_lists.${first} lists too: a caller in both would get either profile; keep each openid in one list`, {
          anchor: 'key',
        });
        break;
      }
      seen.set(openid, key);
    }
  }
}
