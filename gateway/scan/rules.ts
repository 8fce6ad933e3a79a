// What `wxgw scan` reports: the five ways a mini-program backend fails WeChat's review or gets
// abused, plus parser differentials and the policy file's own errors, as rules with stable ids
// (SARIF, JSON and docs/scan.md use the same ids) and the wxgw policy key that fixes each.

/** 0: the policy file and the scan itself; 1-5: the five failure patterns; 6: parser differentials. */
export type Pattern = 0 | 1 | 2 | 3 | 4 | 5 | 6;

export const PATTERNS: Record<Pattern, string> = {
  0: 'The policy file and the scan itself',
  1: 'Certificate chain and TLS',
  2: 'Plain HTTP and HSTS',
  3: 'CORS with credentials',
  4: 'session_key, unionid and personal data sent to clients',
  5: 'Unverified callbacks and per-user limits',
  6: 'Parser differentials',
};

/** Why each pattern matters, in words for whoever decides (the HTML summary). */
export const PATTERN_WHY: Record<Pattern, string> = {
  0: 'A policy wxgw rejects never runs; a scan cut short proves nothing.',
  1: 'Phones, WeChat included, refuse a server whose certificate chain is incomplete: the mini-program cannot connect at all.',
  2: 'Without HTTPS everywhere and HSTS, traffic can be read or changed on the way, and WeChat refuses plain-HTTP domains.',
  3: 'With CORS open to any origin and cookies allowed, any website a user visits can read that user\'s data from the API.',
  4: 'session_key and unionid let others impersonate users and link them across apps; unmasked phone and ID numbers are a reportable leak.',
  5: 'Forged callbacks let anyone fake WeChat messages or payments; without a limit per user, one client can scrape or flood the API.',
  6: 'A header or path the gateway reads one way and the backend another lets requests slip past the rules.',
};

export interface Rule {
  id: string;
  pattern: Pattern;
  /** Short name, e.g. for SARIF's `name`. */
  name: string;
  /** One sentence: what is wrong. */
  summary: string;
  /** How to fix it, naming the wxgw policy key. */
  fix: string;
}

const RULE_LIST: Rule[] = [
  {
    id: 'WX0-POLICY-INVALID',
    pattern: 0,
    name: 'PolicyInvalid',
    summary: 'The policy file is rejected: wxgw would not start with it.',
    fix: 'Correct each error at the line it names; `wxgw validate --config FILE` reports the same.',
  },
  {
    id: 'WX0-SCAN-INCOMPLETE',
    pattern: 0,
    name: 'ScanIncomplete',
    summary: 'The scan stopped at its request cap: the probes after it did not run, so a pass cannot be claimed.',
    fix: 'Raise --max-requests (at most 300), or give fewer --path options or a smaller --burst.',
  },
  {
    id: 'WX1-CHAIN',
    pattern: 1,
    name: 'IncompleteChain',
    summary: 'The certificate chain as served does not verify: an intermediate is missing, the root is untrusted, or the certificate does not cover the host.',
    fix: 'Serve the leaf followed by every intermediate (fullchain.pem): tls.certificates[].cert; wxgw checks the chain at load.',
  },
  {
    id: 'WX1-TLS-VERSION',
    pattern: 1,
    name: 'OldTlsVersion',
    summary: 'TLS 1.0 or 1.1 is offered; both are deprecated (RFC 8996).',
    fix: 'tls.min_version: TLSv1.2 (wxgw never offers less).',
  },
  {
    id: 'WX1-WEAK-CIPHER',
    pattern: 1,
    name: 'WeakCipher',
    summary: 'A cipher suite without forward secrecy or with CBC and SHA-1 is accepted.',
    fix: 'wxgw offers only forward-secret AEAD suites; put it in front, or restrict the server to ECDHE with AES-GCM or ChaCha20.',
  },
  {
    id: 'WX2-NO-TLS',
    pattern: 2,
    name: 'NoTls',
    summary: 'The endpoint speaks plain HTTP; WeChat mini-programs may only call HTTPS.',
    fix: 'Put wxgw in front: server.https with tls.certificates, and the backend behind it on a private address (upstreams).',
  },
  {
    id: 'WX2-PLAIN-HTTP',
    pattern: 2,
    name: 'PlainHttpServed',
    summary: 'The plain-HTTP port answers requests instead of redirecting them to HTTPS.',
    fix: 'server.http: { listen: ..., mode: redirect } (308 to https only), or leave server.http out.',
  },
  {
    id: 'WX2-OPEN-REDIRECT',
    pattern: 2,
    name: 'OpenRedirect',
    summary: 'The plain-HTTP redirect sends clients to whatever host the request named.',
    fix: 'server.public_host: the redirect then names a host the certificates cover, never the client-supplied Host.',
  },
  {
    id: 'WX2-HSTS',
    pattern: 2,
    name: 'Hsts',
    summary: 'HTTPS answers carry no Strict-Transport-Security, or one too short or without includeSubDomains.',
    fix: 'tls.hsts: { max_age: 365d, include_subdomains: true }.',
  },
  {
    id: 'WX3-CORS-CREDENTIALS',
    pattern: 3,
    name: 'CorsAnyOriginWithCredentials',
    summary: 'A lookalike or null Origin is allowed, with credentials: any site can read the user\'s answers.',
    fix: 'routes[].cors: { origins: [exact origins], credentials: true }; wxgw never reflects an origin it was not given and refuses `*` with credentials.',
  },
  {
    id: 'WX3-CORS-WILDCARD',
    pattern: 3,
    name: 'CorsWildcard',
    summary: 'CORS allows a wildcard origin.',
    fix: 'routes[].cors.origins: list the exact origins of your web apps.',
  },
  {
    id: 'WX4-SENSITIVE-DATA',
    pattern: 4,
    name: 'SensitiveDataToClient',
    summary: 'JSON answers carry session_key, unionid or unmasked personal data (phone, ID or card numbers, email).',
    fix: 'mask_profiles.<name>: { drop: [session_key, unionid], partial: {...}, detect: [cn_mobile, cn_idcard, bank_card, email] } and routes[].mask (or defaults.mask).',
  },
  {
    id: 'WX4-UNMASKED-ROUTE',
    pattern: 4,
    name: 'UnmaskedRoute',
    summary: 'A route that serves user data has no mask profile, or its profile lets session_key or unionid through.',
    fix: 'routes[].mask or defaults.mask naming a profile that drops session_key and unionid.',
  },
  {
    id: 'WX5-CALLBACK-UNVERIFIED',
    pattern: 5,
    name: 'UnverifiedCallback',
    summary: 'A callback accepts requests with a forged signature, or a callback route has no signature and replay check.',
    fix: 'routes[].wechat_callback: { max_skew: 300s } (or wechatpay_notify for WeChat Pay) on the callback route.',
  },
  {
    id: 'WX5-NO-RATE-LIMIT',
    pattern: 5,
    name: 'NoRateLimit',
    summary: 'A burst from one client is never limited.',
    fix: 'defaults.rate_limit: { key: openid, limit: 100, window: 60s, fallback_key: ip } (or routes[].rate_limit).',
  },
  {
    id: 'WX5-ADMIN-EXPOSED',
    pattern: 5,
    name: 'AdminExposed',
    summary: 'An admin listener or admin route is reachable from any address.',
    fix: 'server.admin.listen on 127.0.0.1; routes[].allow for admin routes limited to your own network (ip_lists).',
  },
  {
    id: 'WX6-PARSER-DIFFERENTIAL',
    pattern: 6,
    name: 'ParserDifferential',
    summary: 'Another spelling of a header, path or method reaches the backend with a different outcome than the canonical one.',
    fix: 'server.headers.underscores: drop (or reject), server.paths.semicolons: reject (or strip); bind routes to methods with match.methods.',
  },
];

export const RULES: ReadonlyMap<string, Rule> = new Map(RULE_LIST.map((r) => [r.id, r]));

export function rule(id: string): Rule {
  const r = RULES.get(id);
  if (!r) throw new Error(`unknown scan rule ${id}`);
  return r;
}
