// Cross-origin access for one route, compiled once per policy load from its `cors` section.
//
// Origins match exactly as browsers serialise them (lower-case scheme and host, port only when not
// the default, no path): an Origin spelt any other way (upper case, trailing slash) comes from no
// browser and is not allowed, and `null` (sandboxed frames, file: pages) never is. `https://*.x.com`
// matches one or more whole labels in front of `.x.com` with the same scheme and port, never
// `x.com` itself. `*` answers `Access-Control-Allow-Origin: *` and is only accepted without
// credentials (Kong's reflect-anything-with-credentials is the failure this refuses).
//
// A preflight asking for a method or headers the policy does not list is still answered 204, with
// only the configured ones: the browser then refuses the actual request itself, exactly as it
// would against a server that never heard of those headers, and the gateway reveals nothing more.
import type { CorsConfig } from '../types/policy.js';

export const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

export interface CompiledCors {
  /** The `Access-Control-Allow-Origin` value for a request's Origin, or undefined when not allowed. */
  allowOrigin(origin: string | undefined): string | undefined;
  /** Preflight headers except Access-Control-Allow-Origin, the same for every allowed origin. */
  readonly preflightHeaders: Readonly<Record<string, string>>;
  /** Headers added to an actual request's answer for an allowed origin, besides the origin itself. */
  readonly actualHeaders: readonly (readonly [string, string])[];
}

interface Pattern {
  /** `https://` */
  scheme: string;
  /** `.example.com` or `.example.com:8443` */
  suffix: string;
}

/** One or more DNS labels separated by single dots: what `*.` may stand for. */
function labels(s: string): boolean {
  if (s.length === 0) return false;
  let labelLength = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (labelLength === 0) return false;
      labelLength = 0;
    } else if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 /* - */) {
      labelLength++;
    } else {
      return false;
    }
  }
  return labelLength > 0;
}

function matchesPattern(origin: string, p: Pattern): boolean {
  return (
    origin.length > p.scheme.length + p.suffix.length &&
    origin.startsWith(p.scheme) &&
    origin.endsWith(p.suffix) &&
    labels(origin.slice(p.scheme.length, origin.length - p.suffix.length))
  );
}

export function compileCors(config: CorsConfig): CompiledCors {
  const any = config.origins.includes('*');
  if (any && config.credentials) throw new Error('cors: origin * cannot be combined with credentials');
  const exact = new Set<string>();
  const patterns: Pattern[] = [];
  for (const origin of config.origins) {
    if (origin === '*') continue;
    const star = origin.indexOf('://*.');
    if (star < 0) exact.add(origin);
    else patterns.push({ scheme: origin.slice(0, star + 3), suffix: origin.slice(star + 4) });
  }

  const preflightHeaders: Record<string, string> = {
    'access-control-allow-methods': config.methods.join(', '),
    'access-control-max-age': String(config.max_age),
    vary: PREFLIGHT_VARY,
  };
  if (config.headers.length > 0) preflightHeaders['access-control-allow-headers'] = config.headers.join(', ');
  if (config.credentials) preflightHeaders['access-control-allow-credentials'] = 'true';

  const actualHeaders: [string, string][] = [];
  if (config.credentials) actualHeaders.push(['access-control-allow-credentials', 'true']);
  if (config.expose_headers.length > 0) actualHeaders.push(['access-control-expose-headers', config.expose_headers.join(', ')]);

  return Object.freeze({
    allowOrigin(origin: string | undefined): string | undefined {
      if (origin === undefined) return undefined;
      if (any) return '*';
      if (exact.has(origin)) return origin === 'null' ? undefined : origin;
      for (const p of patterns) if (matchesPattern(origin, p)) return origin;
      return undefined;
    },
    preflightHeaders: Object.freeze(preflightHeaders),
    actualHeaders: Object.freeze(actualHeaders.map((h) => Object.freeze(h))),
  });
}
