// A route's guards as data: compiled once per snapshot into an ordered list of steps, run per
// request until one stops it. The order is the one in docs/policy.md, cheapest and stateless
// first, so a request refused early costs nothing later (a forbidden address is never counted, a
// forged callback never claims a nonce):
//
//   ip allowlist -> CORS (preflight answered here) -> signed callback -> identity -> rate limits
//
// The chain never touches a socket. The proxy hands it the request line, the headers, the client
// address and a way to read the body, and gets back a verdict: go on (with these headers, this
// body and this openid), refuse (reason, headers), or answer (a preflight, a callback's echo).
// Chains whose steps are all stateless decide without a promise.
//
// A rule in report mode (docs/policy.md) runs in its place in the order and decides as it would,
// but what it would have refused only goes on the verdict's `shadow` list: the request goes on as
// if the rule were absent. Chains without such a rule are built from exactly the steps they had.
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError, type Reason } from '../errors.js';
import type { IdentityVerifier, VerifiedClaims } from '../identity/verify.js';
import type { RateResult, RateRule, Store } from '../store/store.js';
import type { CallbackGuard, Seal } from './callback-types.js';
import type { CallbackDelivery } from './callback-replay.js';
import type { CompiledCors } from './cors.js';
import { EVERYONE, type IpAllow } from './ip-allow.js';
import { rateLimitHeaders, type RateLimitGuard } from './rate-limit.js';

/** What the chain may look at; everything is read-only but the body, which it reads through `readBody`. */
export interface GuardInput {
  readonly method: string;
  /** The request target as received (path and query); callbacks read their query from it. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The resolved client address (net/client-address.ts). */
  readonly client: string;
  /** A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method). */
  readonly preflight: boolean;
  /** The whole request body, bounded; the proxy's I/O. Rejects with body_too_large past `limit`. */
  readBody(limit: number): Promise<Buffer>;
}

/** What the guards decided that the forwarded request and its answer carry. */
export interface Passed {
  readonly kind: 'continue';
  /** Headers for the upstream, set by the gateway (the verified openid, callback verification). */
  readonly added: Record<string, string>;
  /** Headers for the client's answer (RateLimit-*). */
  readonly answerAdded: Record<string, string> | undefined;
  /** Replaces the client's body (a verified, decrypted callback). */
  readonly body: Buffer | undefined;
  /** Seals the upstream's reply into a signed, encrypted callback reply. */
  readonly seal: Seal | undefined;
  /** Replaces the client's query string (a decrypted callback's, without its encryption parameters). */
  readonly query?: string;
  /** Client request headers kept from the upstream (a decrypted Pay notification's signature headers). */
  readonly dropHeaders?: readonly string[];
  /**
   * A verified callback's claim: the proxy commits it with the answer once the upstream answered
   * (below 500) or releases it, and never cancels its upstream request when the client hangs up.
   */
  readonly delivery?: CallbackDelivery;
  readonly openid: string | undefined;
  /** The verified token's claims the policy selects by (a mask chosen by role); never from a client header. */
  readonly claims: VerifiedClaims | undefined;
  /** The route's CORS guard and the Origin it allows, for every answer including the gateway's own. */
  readonly cors: CompiledCors | undefined;
  readonly allowedOrigin: string | undefined;
  /** Admitted without a rate-limit decision because the store was down (`on_unavailable: allow`). */
  readonly storeBypassed: boolean;
  /** What rules in report mode would have refused, as `rule:reason`; absent when none would. */
  readonly shadow?: readonly string[];
}

export interface Refused {
  readonly kind: 'refuse';
  readonly reason: Reason;
  readonly message?: string;
  readonly headers?: Record<string, string>;
  /** For the log only: what failed, never a secret or the content it failed on. */
  readonly detail?: string;
  /** The CORS answer the refusal carries (undefined before CORS was decided). */
  readonly cors?: CompiledCors;
  readonly allowedOrigin?: string;
  readonly shadow?: readonly string[];
}

/** The gateway answers itself and nothing goes upstream. */
export interface Answered {
  readonly kind: 'answer';
  readonly status: number;
  readonly headers: Record<string, string>;
  /** undefined: no body (a preflight's 204). */
  readonly contentType?: string;
  readonly body?: string | Buffer;
  /** A callback answered from the store: the same request answered before, or another carrying its message. */
  readonly callback?: 'replayed' | 'deduplicated';
  readonly cors?: CompiledCors;
  readonly allowedOrigin?: string;
  readonly shadow?: readonly string[];
}

export type Verdict = Passed | Refused | Answered;

/** What a route's guards are built from, each already compiled at snapshot build. */
export interface RouteGuards {
  readonly ipAllow: IpAllow;
  readonly cors: CompiledCors | undefined;
  readonly callback: CallbackGuard | undefined;
  /** undefined: the policy has no identity section, or the route is the login endpoint itself. */
  readonly identity: IdentityVerifier | undefined;
  readonly identityRequired: boolean;
  readonly rateLimit: RateLimitGuard | undefined;
  readonly store: Store;
  /** `store.on_unavailable: allow`. */
  readonly storeFailOpen: boolean;
  /** Rules decided and counted but not enforced; absent when the route enforces every rule. */
  readonly report?: ReportGuards;
}

/**
 * A route's rules in report mode. The enforced parts stay in RouteGuards without them: `ipAllow`
 * without a reported allow or deny, `cors` undefined when CORS is reported, `rateLimit` with the
 * enforced limits only.
 */
export interface ReportGuards {
  /** The route's allow alone (no deny), when allow is reported. */
  readonly allow?: IpAllow;
  /** The route's deny alone (allow any), when deny is reported. */
  readonly deny?: IpAllow;
  /** CORS reported: the route's CORS (null without a cors section, which refuses every preflight). */
  readonly cors?: CompiledCors | null;
  /** The route's callback guard is reported: it checks, but never verifies, decrypts or answers. */
  readonly callback?: boolean;
  /** identity_required is reported: an unverified request goes on without an identity. */
  readonly identityRequired?: boolean;
  /** The limits in report mode: counted in the store, never refusing. */
  readonly rateLimit?: RateLimitGuard;
}

/** A kind of guard, as traces and logs name the steps of a chain. */
export type GuardName = 'allowlist' | 'cors' | 'callback' | 'identity' | 'rate_limit';

export interface GuardChain {
  /** Whether any step needs the body, a token or the store: if not, run() never returns a promise. */
  readonly stateful: boolean;
  /** The kinds of guard the chain runs, in order (for traces: which decisions a verdict stands for). */
  readonly guards: readonly GuardName[];
  run(input: GuardInput): Verdict | Promise<Verdict>;
}

/** The request's progress through the chain, private to one run. */
interface Progress {
  readonly input: GuardInput;
  added: Record<string, string>;
  answerAdded: Record<string, string> | undefined;
  body: Buffer | undefined;
  seal: Seal | undefined;
  query?: string;
  dropHeaders?: readonly string[];
  openid: string | undefined;
  claims: VerifiedClaims | undefined;
  cors: CompiledCors | undefined;
  allowedOrigin: string | undefined;
  storeBypassed: boolean;
  /** Rate-limit rules already counted (a new token's address budget, before its check). */
  charged: readonly RateRule[];
  /** A verified callback's claim, released when a later step stops the request. */
  delivery: CallbackDelivery | undefined;
  /** Report-mode limits already counted (the address budget of a token not verified before). */
  reportCharged: readonly RateRule[];
  /** What report-mode rules would have refused: `rule:reason`. */
  shadow: string[] | undefined;
}

type Stop = Refused | Answered;
/** undefined: on to the next step; a verdict ends the chain (Passed only from CORS in report mode: a preflight). */
type Step = (p: Progress) => Verdict | undefined | Promise<Verdict | undefined>;

function refused(p: Progress, reason: Reason, extra?: { message?: string; headers?: Record<string, string>; detail?: string }): Refused {
  return { kind: 'refuse', reason, ...extra, ...(p.cors && { cors: p.cors, allowedOrigin: p.allowedOrigin }) };
}

/** Notes what a rule in report mode would have refused. */
function shadow(p: Progress, decision: string): void {
  (p.shadow ??= []).push(decision);
}

function ipStep(ipAllow: IpAllow, report: ReportGuards | undefined): Step {
  const allow = report?.allow;
  const deny = report?.deny;
  if (!allow && !deny) return (p) => (ipAllow.allows(p.input.client) ? undefined : refused(p, 'ip_not_allowed'));
  return (p) => {
    const client = p.input.client;
    if (!ipAllow.allows(client)) return refused(p, 'ip_not_allowed');
    if (allow && !allow.allows(client)) shadow(p, 'allow:ip_not_allowed');
    if (deny && !deny.allows(client)) shadow(p, 'deny:ip_not_allowed');
    return undefined;
  };
}

/**
 * CORS in report mode: the gateway neither answers preflights nor writes CORS headers (the
 * backend's own pass, as before wxgw took CORS over). Counted: each preflight it would have
 * refused, and each request from an Origin it would not have let the page read. A preflight goes
 * to the backend from here, as it would have been answered here: it carries no credentials and
 * no body, so the steps after CORS (a token required, a limit) never see it in either mode.
 */
function corsReportStep(cors: CompiledCors | null): Step {
  return (p) => {
    const origin = p.input.headers.origin;
    if ((p.input.preflight || origin !== undefined) && (cors === null || cors.allowOrigin(origin) === undefined)) shadow(p, 'cors:cors_origin_not_allowed');
    return p.input.preflight ? passed(p) : undefined;
  };
}

/**
 * A callback in report mode is checked as it would be (and claimed, so a replay shows), but
 * the upstream gets the client's bytes as they came: never the verified-callback headers, never a
 * decrypted body, never a sealed reply; URL verification is the backend's to answer.
 */
function callbackReportStep(callback: CallbackGuard): Step {
  return async (p) => {
    // Bounded by server.limits.body: a body over the callback's own limit must still reach the backend whole.
    const raw = await p.input.readBody(Number.POSITIVE_INFINITY);
    if (raw.length > 0) {
      p.body = raw;
      p.added['content-length'] = String(raw.length);
    }
    if (raw.length > callback.maxBody) {
      shadow(p, 'callback:body_too_large');
      return undefined;
    }
    const url = p.input.url;
    const q = url.indexOf('?');
    let outcome;
    try {
      outcome = await callback.check({ method: p.input.method, query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), headers: p.input.headers, body: raw });
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      shadow(p, `callback:${err.reason}`);
      return undefined;
    }
    if (outcome.kind === 'refuse') shadow(p, `callback:${outcome.reason}`);
    else if (outcome.kind === 'forward') p.delivery = outcome.delivery;
    // Enforced, it would have been answered from the store, never reaching the backend.
    else if (outcome.replayed) shadow(p, `callback:${REPLAYED[outcome.replayed]}`);
    return undefined;
  };
}

/** Preflights are the gateway's to answer and never reach the upstream. */
function corsStep(cors: CompiledCors | undefined): Step {
  return (p) => {
    const { preflight, headers } = p.input;
    if (!cors) {
      return preflight ? refused(p, 'cors_origin_not_allowed', { message: 'this route allows no cross-origin requests' }) : undefined;
    }
    const allowed = cors.allowOrigin(headers.origin);
    if (preflight) {
      if (allowed === undefined) return refused(p, 'cors_origin_not_allowed');
      return { kind: 'answer', status: 204, headers: { ...cors.preflightHeaders, 'access-control-allow-origin': allowed } };
    }
    p.cors = cors;
    p.allowedOrigin = allowed;
    return undefined;
  };
}

const REPLAYED = { request: 'replayed', message: 'deduplicated' } as const;

function callbackStep(callback: CallbackGuard): Step {
  return async (p) => {
    const raw = await p.input.readBody(callback.maxBody);
    const url = p.input.url;
    const q = url.indexOf('?');
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const outcome = await callback.check({ method: p.input.method, query, headers: p.input.headers, body: raw });
    if (outcome.kind === 'refuse') return refused(p, outcome.reason, { detail: outcome.detail });
    if (outcome.kind === 'answer') {
      const answered: Answered = { kind: 'answer', status: outcome.status, contentType: outcome.contentType, body: outcome.body, headers: { 'cache-control': 'no-store' } };
      return outcome.replayed ? { ...answered, callback: REPLAYED[outcome.replayed] } : answered;
    }
    p.body = outcome.body;
    Object.assign(p.added, outcome.headers, { 'content-type': outcome.contentType, 'content-length': String(outcome.body.length) });
    p.seal = outcome.sealReply;
    p.query = outcome.query;
    p.dropHeaders = outcome.dropHeaders;
    p.delivery = outcome.delivery;
    return undefined;
  };
}

/** `on_unavailable: allow`: a count the store makes after giving up stays, as the request went through. */
const ADMITS_UNANSWERED = Object.freeze({ admitsUnanswered: true });

/**
 * One rate-limit decision over `rules`. The store being down is decided here and nowhere else:
 * `on_unavailable: deny` refuses (and the store takes back any count it made late), `allow`
 * admits and says so.
 */
async function charge(g: RouteGuards, p: Progress, rules: readonly RateRule[]): Promise<Stop | undefined> {
  if (rules.length === 0) return undefined;
  let results;
  try {
    results = await g.store.hit(rules, g.storeFailOpen ? ADMITS_UNANSWERED : undefined);
  } catch (err) {
    return storeFailed(g, p, err);
  }
  return decided(p, results);
}

/**
 * charge() on a store that decides in process (Store.hitNow): the same decision without a
 * promise, so a route whose only stateful guard is a memory-store limit is decided on the spot.
 */
function chargeNow(g: RouteGuards, hitNow: NonNullable<Store['hitNow']>, p: Progress, rules: readonly RateRule[]): Stop | undefined {
  if (rules.length === 0) return undefined;
  let results;
  try {
    results = hitNow(rules, g.storeFailOpen ? ADMITS_UNANSWERED : undefined);
  } catch (err) {
    return storeFailed(g, p, err);
  }
  return decided(p, results);
}

function storeFailed(g: RouteGuards, p: Progress, err: unknown): undefined {
  if (!(err instanceof GatewayError) || err.reason !== 'store_unavailable' || !g.storeFailOpen) throw err;
  p.storeBypassed = true;
  return undefined;
}

function decided(p: Progress, results: readonly RateResult[]): Stop | undefined {
  const headers = rateLimitHeaders(results);
  for (const r of results) if (!r.allowed) return refused(p, 'rate_limited', { headers });
  p.answerAdded = headers;
  return undefined;
}

/**
 * Limits in report mode count every request in the store exactly as enforced ones do, so their
 * decisions are real, but refuse none and add no RateLimit-* headers; a store that cannot answer
 * is noted, never a refusal, whatever `on_unavailable` says.
 */
async function chargeReport(g: RouteGuards, p: Progress, rules: readonly RateRule[]): Promise<undefined> {
  if (rules.length === 0) return undefined;
  try {
    const results = await g.store.hit(rules, ADMITS_UNANSWERED);
    if (!results.every((r) => r.allowed)) shadow(p, 'rate_limit:rate_limited');
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    shadow(p, `rate_limit:${err.reason}`);
  }
  return undefined;
}

/**
 * A token not verified before costs a signature check, which a flood of made-up tokens would make
 * the gateway pay for free: each one is first counted where an anonymous request from that address
 * would be, and refused there once that budget is spent.
 */
function identityStep(g: RouteGuards, identity: IdentityVerifier): Step {
  const settled = (p: Progress, outcome: Awaited<ReturnType<IdentityVerifier['verify']>>): Stop | undefined => {
    if (outcome.kind === 'verified') {
      p.openid = outcome.openid;
      p.claims = outcome.claims;
      p.added[identity.upstreamHeader] = outcome.openid;
      return undefined;
    }
    if (!g.identityRequired) return undefined;
    const reason = outcome.kind === 'refused' ? outcome.reason : 'identity_required';
    // Report mode: on without an identity, exactly as an unverified request on a route that does not require one.
    if (g.report?.identityRequired) {
      shadow(p, `identity_required:${reason}`);
      return undefined;
    }
    return refused(p, reason);
  };
  const reportLimits = g.report?.rateLimit;
  return (p) => {
    const outcome = identity.identify(p.input.headers);
    // A verified token whose revocation is still to look up (identity.logout): not charged as anonymous.
    if (outcome.kind === 'checking') return outcome.check().then((o) => settled(p, o));
    if (outcome.kind !== 'pending') return settled(p, outcome);
    return (async () => {
      if (g.rateLimit) {
        p.charged = g.rateLimit.fallbackRules(p.input.client);
        const stop = await charge(g, p, p.charged);
        if (stop) return stop;
      }
      if (reportLimits) {
        p.reportCharged = reportLimits.fallbackRules(p.input.client);
        await chargeReport(g, p, p.reportCharged);
      }
      return settled(p, await outcome.check());
    })();
  };
}

/** The rules not counted yet: a token that did not verify was already counted against the address's anonymous budget. */
function uncharged(all: RateRule[], charged: readonly RateRule[]): RateRule[] {
  return charged.length === 0 ? all : all.filter((r) => !charged.some((c) => c.key === r.key));
}

function rateLimitStep(g: RouteGuards, rateLimit: RateLimitGuard): Step {
  const hitNow = g.store.hitNow;
  if (hitNow) return (p) => chargeNow(g, hitNow, p, uncharged(rateLimit.rules(p.openid, p.input.client), p.charged));
  return (p) => charge(g, p, uncharged(rateLimit.rules(p.openid, p.input.client), p.charged));
}

function rateLimitReportStep(g: RouteGuards, rateLimit: RateLimitGuard): Step {
  return (p) => chargeReport(g, p, uncharged(rateLimit.rules(p.openid, p.input.client), p.reportCharged));
}

function passed(p: Progress): Passed {
  return {
    kind: 'continue',
    added: p.added,
    answerAdded: p.answerAdded,
    body: p.body,
    seal: p.seal,
    ...(p.query !== undefined && { query: p.query }),
    ...(p.dropHeaders && { dropHeaders: p.dropHeaders }),
    ...(p.delivery && { delivery: p.delivery }),
    openid: p.openid,
    claims: p.claims,
    cors: p.cors,
    allowedOrigin: p.allowedOrigin,
    storeBypassed: p.storeBypassed,
  };
}

/** A guard's GatewayError (body too large, store unavailable) is a refusal like any other. */
function caught(p: Progress, err: unknown): Refused {
  if (err instanceof GatewayError) return refused(p, err.reason, { message: err.message, detail: err.message });
  throw err;
}

/** Runs steps from `from` on; returns a promise only from the first step that does. */
function runFrom(steps: readonly Step[], from: number, p: Progress): Verdict | Promise<Verdict> {
  for (let i = from; i < steps.length; i++) {
    let stop: ReturnType<Step>;
    try {
      stop = steps[i]!(p);
    } catch (err) {
      return caught(p, err);
    }
    if (stop instanceof Promise) {
      return stop.then(
        (s) => s ?? runFrom(steps, i + 1, p),
        (err: unknown) => caught(p, err),
      );
    }
    if (stop) return stop;
  }
  return passed(p);
}

/** A callback stopped after its check passed (a rate limit, the store) is retried by WeChat: its claim goes back. */
function given(p: Progress, verdict: Verdict): Verdict {
  if (verdict.kind !== 'continue') p.delivery?.release();
  return p.shadow ? { ...verdict, shadow: p.shadow } : verdict;
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

const NO_RULES: readonly RateRule[] = Object.freeze([]);

/** What a route without guards lets every request through with; shared, as nothing in it varies. */
const PASSED: Passed = Object.freeze({
  kind: 'continue',
  added: NO_HEADERS,
  answerAdded: undefined,
  body: undefined,
  seal: undefined,
  openid: undefined,
  claims: undefined,
  cors: undefined,
  allowedOrigin: undefined,
  storeBypassed: false,
});

/** Every chain decides the address and CORS, if only to allow any address and refuse preflights. */
const ALWAYS: readonly GuardName[] = Object.freeze(['allowlist', 'cors']);

const NO_CORS_PREFLIGHT: Refused = Object.freeze({ kind: 'refuse', reason: 'cors_origin_not_allowed', message: 'this route allows no cross-origin requests' });

export function compileGuardChain(g: RouteGuards): GuardChain {
  // The commonest route (any address, no CORS, nothing stateful) is decided without allocating.
  if (g.ipAllow === EVERYONE && !g.cors && !g.callback && !g.identity && !g.rateLimit && !g.report) {
    return Object.freeze({ stateful: false, guards: ALWAYS, run: (input: GuardInput): Verdict => (input.preflight ? NO_CORS_PREFLIGHT : PASSED) });
  }
  const report = g.report;
  const steps: Step[] = [ipStep(g.ipAllow, report), report?.cors !== undefined ? corsReportStep(report.cors) : corsStep(g.cors)];
  if (g.callback) steps.push(report?.callback ? callbackReportStep(g.callback) : callbackStep(g.callback));
  if (g.identity) steps.push(identityStep(g, g.identity));
  if (g.rateLimit) steps.push(rateLimitStep(g, g.rateLimit));
  if (report?.rateLimit) steps.push(rateLimitReportStep(g, report.rateLimit));
  Object.freeze(steps);
  const guards: readonly GuardName[] = Object.freeze([...ALWAYS, ...(g.callback ? ['callback' as const] : []), ...(g.identity ? ['identity' as const] : []), ...(g.rateLimit || report?.rateLimit ? ['rate_limit' as const] : [])]);
  return Object.freeze({
    stateful: steps.length > 2,
    guards,
    run(input: GuardInput): Verdict | Promise<Verdict> {
      const p: Progress = {
        input,
        added: {},
        answerAdded: undefined,
        body: undefined,
        seal: undefined,
        openid: undefined,
        claims: undefined,
        cors: undefined,
        allowedOrigin: undefined,
        storeBypassed: false,
        charged: [],
        delivery: undefined,
        reportCharged: NO_RULES,
        shadow: undefined,
      };
      const verdict = runFrom(steps, 0, p);
      return verdict instanceof Promise ? verdict.then((v) => given(p, v)) : given(p, verdict);
    },
  });
}
