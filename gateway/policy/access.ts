// Who may call and from which web pages: `ip_lists`, `allow`, `deny` and `cors`, written under
// `defaults` or on a route. A route key replaces the default key whole, so every check on the
// effective value is made per route. Missing access rules are an error, never "open".

import { cidrsOverlap, parseClientCidr, parseOrigin } from './addresses.js';
import { isRecord, type KeyPath } from './key-path.js';
import { show, type Reporter } from './report.js';
import { checkMethods } from './routes.js';
import { closest } from './suggest.js';
import { parseSeconds } from './units.js';

/** Entries holding `.`, `:` or `/` are addresses; the rest are `ip_lists` names (which cannot). */
export function isAddressText(text: string): boolean {
  return /[.:/]/.test(text);
}

/** Browsers cap a preflight's cache: Chromium at 2 hours (Firefox at 24). */
const PREFLIGHT_CAP_S = 7200;

/** One resolved address block and where it was written. */
interface Entry {
  cidr: string;
  written: string;
  at: KeyPath;
}

/** undefined: absent or already reported as malformed, so nothing more is said about it. */
type Resolved = { any: true } | { any: false; entries: Entry[] } | undefined;

class AccessChecker {
  /** Each list's blocks; undefined for a list with a malformed entry (already reported). */
  private readonly lists = new Map<string, string[] | undefined>();

  constructor(private readonly report: Reporter) {}

  ipLists(value: unknown): void {
    if (!isRecord(value)) return;
    for (const [name, items] of Object.entries(value)) {
      if (!Array.isArray(items)) {
        this.lists.set(name, undefined);
        continue;
      }
      const cidrs: string[] = [];
      let ok = true;
      items.forEach((item: unknown, i) => {
        const parsed = typeof item === 'string' ? parseClientCidr(item) : undefined;
        if (parsed?.ok) cidrs.push(parsed.value);
        else {
          ok = false;
          if (parsed) this.report.error(['ip_lists', name, i], `${show(item)} ${parsed.why}`);
        }
      });
      this.lists.set(name, ok ? cidrs : undefined);
    }
  }

  /** Resolves a list of addresses and `ip_lists` names; undefined when any entry is wrong. */
  private entries(value: unknown, at: KeyPath): Entry[] | undefined {
    if (!Array.isArray(value)) return undefined;
    const out: Entry[] = [];
    let ok = true;
    value.forEach((item: unknown, i) => {
      if (typeof item !== 'string' || item === '') {
        ok = false; // the schema said why
        return;
      }
      const here = [...at, i];
      if (isAddressText(item)) {
        const parsed = parseClientCidr(item);
        if (parsed.ok) out.push({ cidr: parsed.value, written: item, at: here });
        else {
          ok = false;
          this.report.error(here, `${show(item)} ${parsed.why}`);
        }
        return;
      }
      if (!this.lists.has(item)) {
        ok = false;
        this.report.error(here, this.unknownName(item));
        return;
      }
      const cidrs = this.lists.get(item);
      if (cidrs) out.push(...cidrs.map((cidr) => ({ cidr, written: item, at: here })));
      else ok = false;
    });
    return ok ? out : undefined;
  }

  private unknownName(item: string): string {
    const names = [...this.lists.keys()];
    if (names.length === 0) {
      return `${show(item)} is not an address, and no \`ip_lists\` are defined to name it from; expected a CIDR block, an address or an ip_lists name`;
    }
    const near = closest(item, names);
    const hint = near ? `did you mean \`${near}\`?` : `defined lists: ${names.join(', ')}`;
    return `${show(item)} is not an address nor a list defined under \`ip_lists\`; ${hint}`;
  }

  allow(value: unknown, at: KeyPath): Resolved {
    if (value === 'any') return { any: true };
    if (Array.isArray(value) && value.length === 0) return undefined; // the schema explains
    const entries = this.entries(value, at);
    return entries ? { any: false, entries } : undefined;
  }

  deny(value: unknown, at: KeyPath): Entry[] | undefined {
    return this.entries(value, at);
  }

  cors(value: unknown, at: KeyPath): void {
    if (!isRecord(value)) return;
    const credentials = value.credentials === true;
    if (Array.isArray(value.origins)) {
      value.origins.forEach((item: unknown, i) => {
        if (typeof item !== 'string') return;
        const here = [...at, 'origins', i];
        if (item === '*') {
          if (credentials) {
            this.report.error(
              here,
              '`*` together with `credentials: true` is refused: browsers reject a wildcard origin on requests with cookies, and echoing each request\'s Origin instead would let any website read your users\' data; list the origins that may call',
            );
          }
        } else if (item.toLowerCase() === 'null') {
          this.report.error(
            here,
            '`null` is refused as an origin: sandboxed iframes, file:// pages and some redirects all send `Origin: null`, so allowing it would allow any site that wraps its page in a sandbox; list real origins',
          );
        } else {
          const parsed = parseOrigin(item);
          if (!parsed.ok) this.report.error(here, `${show(item)} ${parsed.why}`);
          else if (parsed.value.startsWith('http://*.')) {
            this.report.warn(
              here,
              `${show(item)} accepts plain-http pages on every subdomain: anyone on the network path can inject script into such a page and call with its origin; prefer https:// origins`,
            );
          }
        }
      });
    }
    if (value.methods !== undefined) checkMethods(value.methods, [...at, 'methods'], this.report);
    if (typeof value.max_age === 'string') {
      const parsed = parseSeconds(value.max_age);
      if (!parsed.ok) this.report.error([...at, 'max_age'], `${show(value.max_age)} ${parsed.why}`);
      else if (parsed.value > PREFLIGHT_CAP_S) {
        this.report.warn(
          [...at, 'max_age'],
          `${show(value.max_age)} is longer than browsers keep a preflight answer (Chromium 2h, Firefox 24h); they use their own cap instead, so write at most 2h`,
        );
      }
    }
  }

  /** Warns about deny entries that lie outside everything the route allows. */
  carves(deny: Entry[], allow: Resolved, whose: string): void {
    if (!allow || allow.any) return;
    for (const entry of deny) {
      if (allow.entries.some((a) => cidrsOverlap(a.cidr, entry.cidr))) continue;
      const block = entry.written === entry.cidr ? '' : ` (${entry.cidr})`;
      this.report.warn(entry.at, `${show(entry.written)}${block} lies outside every address ${whose}, so denying it changes nothing`);
    }
  }
}

/** Checks `ip_lists`, `defaults` and each route's `allow`, `deny` and `cors`. */
export function checkAccess(data: Record<string, unknown>, report: Reporter): void {
  const checker = new AccessChecker(report);
  checker.ipLists(data.ip_lists);
  const defaults = isRecord(data.defaults) ? data.defaults : {};
  const defaultAllow = checker.allow(defaults.allow, ['defaults', 'allow']);
  const defaultDeny = checker.deny(defaults.deny, ['defaults', 'deny']);
  checker.cors(defaults.cors, ['defaults', 'cors']);
  if (defaultDeny) checker.carves(defaultDeny, defaultAllow, '`defaults.allow` accepts');

  if (!Array.isArray(data.routes)) return;
  data.routes.forEach((route: unknown, i) => {
    if (!isRecord(route)) return;
    const at = ['routes', i];
    const name = typeof route.name === 'string' ? route.name : `routes[${i}]`;
    const ownAllow = route.allow !== undefined;
    if (!ownAllow && defaults.allow === undefined) {
      report.error(
        at,
        `route \`${name}\` has no \`allow\` and there is no \`defaults.allow\`: list who may call it, or write \`allow: any\` to accept every address`,
        { missing: [[...at, 'allow'], ['defaults', 'allow']] },
      );
    }
    const allow = ownAllow ? checker.allow(route.allow, [...at, 'allow']) : defaultAllow;
    const ownDeny = route.deny !== undefined;
    const deny = ownDeny ? checker.deny(route.deny, [...at, 'deny']) : defaultDeny;
    checker.cors(route.cors, [...at, 'cors']);
    if ((!ownAllow && !ownDeny) || !deny) return; // defaults against defaults: checked above
    const whose = ownAllow
      ? `route \`${name}\` allows`
      : `route \`${name}\` allows (\`defaults.allow\`, line ${report.line(['defaults', 'allow'])})`;
    checker.carves(deny, allow, whose);
  });
}
