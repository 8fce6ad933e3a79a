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
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError, type Reason } from '../errors.js';
import type { IdentityVerifier, VerifiedClaims } from '../identity/verify.js';
import type { RateRule, Store } from '../store/store.js';
import type { CallbackGuard, Seal } from './callback-types.js';
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
  readonly openid: string | undefined;
  /** The verified token's claims the policy selects by (a mask chosen by role); never from a client header. */
  readonly claims: VerifiedClaims | undefined;
  /** The route's CORS guard and the Origin it allows, for every answer including the gateway's own. */
  readonly cors: CompiledCors | undefined;
  readonly allowedOrigin: string | undefined;
  /** Admitted without a rate-limit decision because the store was down (`on_unavailable: allow`). */
  readonly storeBypassed: boolean;
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
}

/** The gateway answers itself and nothing goes upstream. */
export interface Answered {
  readonly kind: 'answer';
  readonly status: number;
  readonly headers: Record<string, string>;
  /** undefined: no body (a preflight's 204). */
  readonly contentType?: string;
  readonly body?: string;
  readonly cors?: CompiledCors;
  readonly allowedOrigin?: string;
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
}

export interface GuardChain {
  /** Whether any step needs the body, a token or the store: if not, run() never returns a promise. */
  readonly stateful: boolean;
  run(input: GuardInput): Verdict | Promise<Verdict>;
}

/** The request's progress through the chain, private to one run. */
interface Progress {
  readonly input: GuardInput;
  added: Record<string, string>;
  answerAdded: Record<string, string> | undefined;
  body: Buffer | undefined;
  seal: Seal | undefined;
  openid: string | undefined;
  claims: VerifiedClaims | undefined;
  cors: CompiledCors | undefined;
  allowedOrigin: string | undefined;
  storeBypassed: boolean;
  /** Rate-limit rules already counted (a new token's address budget, before its check). */
  charged: readonly RateRule[];
  /** Gives a verified callback's nonce back when a later step stops the request. */
  release: (() => void) | undefined;
}

type Stop = Refused | Answered;
type Step = (p: Progress) => Stop | undefined | Promise<Stop | undefined>;

function refused(p: Progress, reason: Reason, extra?: { message?: string; headers?: Record<string, string>; detail?: string }): Refused {
  return { kind: 'refuse', reason, ...extra, ...(p.cors && { cors: p.cors, allowedOrigin: p.allowedOrigin }) };
}

function ipStep(ipAllow: IpAllow): Step {
  return (p) => (ipAllow.allows(p.input.client) ? undefined : refused(p, 'ip_not_allowed'));
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

function callbackStep(callback: CallbackGuard): Step {
  return async (p) => {
    const raw = await p.input.readBody(callback.maxBody);
    const url = p.input.url;
    const q = url.indexOf('?');
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const outcome = await callback.check({ method: p.input.method, query, headers: p.input.headers, body: raw });
    if (outcome.kind === 'refuse') return refused(p, outcome.reason, { detail: outcome.detail });
    if (outcome.kind === 'answer') {
      return { kind: 'answer', status: outcome.status, contentType: outcome.contentType, body: outcome.body, headers: { 'cache-control': 'no-store' } };
    }
    p.body = outcome.body;
    Object.assign(p.added, outcome.headers, { 'content-type': outcome.contentType, 'content-length': String(outcome.body.length) });
    p.seal = outcome.sealReply;
    p.release = outcome.release;
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
    if (!(err instanceof GatewayError) || err.reason !== 'store_unavailable' || !g.storeFailOpen) throw err;
    p.storeBypassed = true;
    return undefined;
  }
  const headers = rateLimitHeaders(results);
  if (!results.every((r) => r.allowed)) return refused(p, 'rate_limited', { headers });
  p.answerAdded = headers;
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
    return refused(p, outcome.kind === 'refused' ? outcome.reason : 'identity_required');
  };
  return (p) => {
    const outcome = identity.identify(p.input.headers);
    if (outcome.kind !== 'pending') return settled(p, outcome);
    return (async () => {
      if (g.rateLimit) {
        p.charged = g.rateLimit.fallbackRules(p.input.client);
        const stop = await charge(g, p, p.charged);
        if (stop) return stop;
      }
      return settled(p, await outcome.check());
    })();
  };
}

function rateLimitStep(g: RouteGuards, rateLimit: RateLimitGuard): Step {
  return (p) => {
    // A token that did not verify was already counted against the address's anonymous budget.
    const all = rateLimit.rules(p.openid, p.input.client);
    return charge(g, p, p.charged.length === 0 ? all : all.filter((r) => !p.charged.some((c) => c.key === r.key)));
  };
}

function passed(p: Progress): Passed {
  return {
    kind: 'continue',
    added: p.added,
    answerAdded: p.answerAdded,
    body: p.body,
    seal: p.seal,
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

/** A callback stopped after its check passed (a rate limit, the store) is retried by WeChat: its nonce goes back. */
function given(p: Progress, verdict: Verdict): Verdict {
  if (verdict.kind !== 'continue') p.release?.();
  return verdict;
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

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

const NO_CORS_PREFLIGHT: Refused = Object.freeze({ kind: 'refuse', reason: 'cors_origin_not_allowed', message: 'this route allows no cross-origin requests' });

export function compileGuardChain(g: RouteGuards): GuardChain {
  // The commonest route (any address, no CORS, nothing stateful) is decided without allocating.
  if (g.ipAllow === EVERYONE && !g.cors && !g.callback && !g.identity && !g.rateLimit) {
    return Object.freeze({ stateful: false, run: (input: GuardInput): Verdict => (input.preflight ? NO_CORS_PREFLIGHT : PASSED) });
  }
  const steps: Step[] = [ipStep(g.ipAllow), corsStep(g.cors)];
  if (g.callback) steps.push(callbackStep(g.callback));
  if (g.identity) steps.push(identityStep(g, g.identity));
  if (g.rateLimit) steps.push(rateLimitStep(g, g.rateLimit));
  Object.freeze(steps);
  return Object.freeze({
    stateful: steps.length > 2,
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
        release: undefined,
      };
      const verdict = runFrom(steps, 0, p);
      return verdict instanceof Promise ? verdict.then((v) => given(p, v)) : given(p, verdict);
    },
  });
}
