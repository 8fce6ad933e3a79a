// The WeChat API egress: the backend's WeChat calls, made with wxgw's one access_token. Each call
// passes the API's circuit and daily budget, gets the cached token in its `access_token` query
// parameter (whatever the backend sent there is dropped), and is sent to wechat.api_base over a
// keep-alive pool (TLS verified against the system roots). An answer that says the token was
// rejected (40001/40014/42001) renews the token once for the whole instance and repeats the call
// once when its body was buffered: WeChat refused such a call before acting on it, so repeating
// it cannot do anything twice. Outlives snapshots: tokens, pools and circuits survive reloads.
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import type { Registry } from 'prom-client';
import type { Reason } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Snapshot } from '../snapshot.js';
import { rateBudget, type RateBudget } from '../store/sliding-window.js';
import { StoreUnavailableError, type Store } from '../store/store.js';
import { CIRCUIT_ERRCODES, TOKEN_ERRCODES, errcodeOf, readTokenAnswer, stableTokenRequest, type IssuedToken } from '../wechat/access-token.js';
import { quotaDay } from '../wechat/quotas.js';
import type { EgressApp } from './apps.js';
import { CIRCUIT_TIMING, Circuit, type CircuitTiming } from './circuit.js';
import { EgressMetrics } from './metrics.js';
import { TokenCache, TokenUnavailableError, type CachedToken } from './token-cache.js';

/** Request bodies up to this size are buffered, and so may be repeated with a renewed token. */
export const REPLAY_LIMIT = 1024 * 1024;
/** Largest request body (media uploads included) and largest answer (media downloads). */
export const MAX_REQUEST = 32 * 1024 * 1024;
export const MAX_ANSWER = 64 * 1024 * 1024;
/** JSON answers up to this size are read for their errcode; WeChat's error answers are tiny. */
const INSPECT_LIMIT = 256 * 1024;
/** Share of a budget from which the warning gauge is raised. */
export const QUOTA_WARN = 0.9;
/** A quota key lives longer than any Beijing day, so every call of the day is in its window. */
const QUOTA_WINDOW_MS = 25 * 3600_000;

/** Hop-by-hop headers (RFC 9110 7.6.1), those the egress states itself, and X-WX-App (wxgw's own). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'expect', 'x-request-id', 'accept-encoding', 'x-wx-app']);

export interface EgressCall {
  readonly method: string;
  readonly path: string;
  readonly search: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** Buffered (repeatable), streamed (sent once), or none. */
  readonly body: Buffer | Readable | undefined;
  readonly requestId: string;
}

export type EgressOutcome =
  | { kind: 'refused'; reason: Reason; errcode: number; message: string; retryAfterMs?: number }
  | { kind: 'answer'; statusCode: number; headers: Record<string, string | string[]>; body: Buffer | Readable; errcode: number | undefined };

export interface EgressDeps {
  readonly source: { readonly current: Snapshot };
  readonly store: Store;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly now?: () => number;
  readonly circuit?: CircuitTiming;
}

interface AppState {
  readonly key: string;
  readonly pool: Pool;
  readonly basePath: string;
  readonly tokens: TokenCache;
}

export class Egress {
  readonly metrics: EgressMetrics;
  private readonly now: () => number;
  private readonly apps = new Map<string, AppState>();
  private readonly circuits = new Map<string, Circuit>();
  private readonly budgets = new Map<number, RateBudget>();
  /** Each API's share of its budget used by each app (by appid): the gauge shows the most used. */
  private readonly usedBy = new Map<string, Map<string, number>>();
  /** The budgets (appid and API) already warned about on `warnedDay`. */
  private warned = new Set<string>();
  private warnedDay = '';

  constructor(private readonly deps: EgressDeps) {
    this.now = deps.now ?? Date.now;
    this.metrics = new EgressMetrics(deps.registry);
  }

  get logger(): Logger {
    return this.deps.logger;
  }

  /** The app's pool and token cache, made again when a reload changed its base URL or secret. */
  private state(app: EgressApp): AppState {
    const key = `${app.apiBase.href}\n${app.secret}`;
    const had = this.apps.get(app.appid);
    if (had?.key === key) return had;
    if (had) had.pool.close().catch(() => undefined);
    const pool = new Pool(app.apiBase.origin, { connections: 32, keepAliveTimeout: 30_000, headersTimeout: app.timeout, bodyTimeout: app.timeout });
    const basePath = app.apiBase.pathname.replace(/\/+$/, '');
    const tokens = new TokenCache({
      store: this.deps.store,
      appid: app.appid,
      now: this.now,
      fetch: (force) => this.fetchToken(pool, basePath, app, force),
      lockTtlMs: 2 * app.timeout + 1000,
      logger: this.deps.logger,
      refreshed: (result) => this.metrics.refreshed(result),
    });
    const state = { key, pool, basePath, tokens };
    this.apps.set(app.appid, state);
    return state;
  }

  token(app: EgressApp): Promise<CachedToken> {
    return this.state(app).tokens.token();
  }

  private async fetchToken(pool: Pool, basePath: string, app: EgressApp, force: boolean): Promise<IssuedToken> {
    let answer: unknown;
    try {
      const res = await pool.request({
        method: 'POST',
        path: `${basePath}/cgi-bin/stable_token`,
        headers: { 'content-type': 'application/json' },
        body: stableTokenRequest(app.appid, app.secret, force),
        signal: AbortSignal.timeout(app.timeout),
      });
      answer = JSON.parse(await readLimited(res.body, 64 * 1024));
    } catch (err) {
      // The message names what failed, never the request (its body holds the secret).
      throw new TokenUnavailableError(`stable_token could not be fetched: ${(err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError' ? 'WeChat did not answer in time' : (err as Error).message}`);
    }
    const read = readTokenAnswer(answer, this.now());
    if ('errcode' in read) {
      this.deps.logger.error({ appid: app.appid, errcode: read.errcode, errmsg: read.errmsg }, `WeChat refused wxgw's stable_token request (errcode ${read.errcode}): check wechat.appid and wechat.app_secret, and the IP allowlist at WeChat's console`);
      throw new TokenUnavailableError(`WeChat refused the stable_token request with errcode ${read.errcode}`, read.errcode);
    }
    return read;
  }

  private circuit(app: EgressApp, api: string): Circuit {
    const key = `${app.appid} ${api}`;
    let c = this.circuits.get(key);
    if (!c) {
      c = new Circuit(this.deps.circuit ?? CIRCUIT_TIMING, (to, retryAfterMs) => {
        this.metrics.circuitChanged(api, to);
        const fields = { appid: app.appid, api, circuit: to, ...(to === 'open' && { retry_after_ms: retryAfterMs }) };
        if (to === 'closed') this.deps.logger.info(fields, 'WeChat API circuit closed: calls go through again');
        else if (to === 'half_open') this.deps.logger.info(fields, 'WeChat API circuit half-open: one probe call goes through');
        else this.deps.logger.warn(fields, 'WeChat API circuit open: calls are refused with wx_circuit_open until the backoff ends');
      });
      this.circuits.set(key, c);
    }
    return c;
  }

  /** Counts the call against the API's daily budget; a refusal when it is used up. */
  private async charge(app: EgressApp, api: string): Promise<Extract<EgressOutcome, { kind: 'refused' }> | undefined> {
    const limit = app.quotas.get(api);
    if (limit === undefined) return undefined;
    const { day, msToReset } = quotaDay(this.now());
    let budget = this.budgets.get(limit);
    if (!budget) this.budgets.set(limit, (budget = rateBudget(limit, QUOTA_WINDOW_MS)));
    let result;
    try {
      [result] = await this.deps.store.hit([{ key: `wxquota:${app.appid}:${api}:${day}`, budget }]);
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      if (this.deps.source.current.policy.store.on_unavailable === 'allow') return undefined;
      return { kind: 'refused', reason: 'store_unavailable', errcode: -1, message: 'the daily budget of this WeChat API cannot be checked: the store is unavailable' };
    }
    const used = limit - result!.remaining;
    const near = limit === 0 || used >= QUOTA_WARN * limit;
    if (day !== this.warnedDay) {
      this.warned = new Set();
      this.usedBy.clear();
      this.warnedDay = day;
    }
    let shares = this.usedBy.get(api);
    if (!shares) this.usedBy.set(api, (shares = new Map()));
    shares.set(app.appid, limit === 0 ? 1 : used / limit);
    const most = Math.max(...shares.values());
    this.metrics.budget(api, most, most >= QUOTA_WARN || limit === 0);
    if (near && !this.warned.has(`${app.appid} ${api}`)) {
      this.warned.add(`${app.appid} ${api}`);
      this.deps.logger.warn({ appid: app.appid, api, used, per_day: limit, day }, `WeChat API budget ${Math.round(QUOTA_WARN * 100)}% used today (Beijing time)`);
    }
    if (result!.allowed) return undefined;
    return {
      kind: 'refused',
      reason: 'wx_quota',
      errcode: 45009,
      message: `the daily budget of ${api} (${limit} calls, wechat.quotas) is used up until 00:00 Beijing time`,
      retryAfterMs: msToReset,
    };
  }

  /** One call to WeChat for the backend (or for wxgw itself: the phone endpoint). */
  async call(app: EgressApp, call: EgressCall): Promise<EgressOutcome> {
    const api = call.path;
    const circuit = this.circuit(app, api);
    const admitted = circuit.admit(this.now());
    if (!admitted.ok) {
      this.metrics.refused(api, 'wx_circuit_open');
      return { kind: 'refused', reason: 'wx_circuit_open', errcode: -1, message: `calls to ${api} are paused after WeChat answered busy, over quota or not at all`, retryAfterMs: admitted.retryAfterMs };
    }
    const { probe } = admitted;
    let told = false;
    try {
      const refused = await this.charge(app, api);
      if (refused) {
        this.metrics.refused(api, refused.reason);
        return refused;
      }
      const state = this.state(app);
      let token: CachedToken;
      try {
        token = await state.tokens.token();
      } catch (err) {
        return this.tokenRefusal(api, err);
      }
      let outcome = await this.send(state, app, call, token.token);
      if (outcome.kind === 'answer' && outcome.errcode !== undefined && TOKEN_ERRCODES.has(outcome.errcode)) {
        this.deps.logger.info({ request_id: call.requestId, appid: app.appid, api, errcode: outcome.errcode, repeated: Buffer.isBuffer(call.body) || call.body === undefined }, 'WeChat rejected the access_token; renewing it');
        const renewal = state.tokens.replace(token.token);
        if (Buffer.isBuffer(call.body) || call.body === undefined) {
          try {
            token = await renewal;
          } catch (err) {
            return this.tokenRefusal(api, err);
          }
          outcome = await this.send(state, app, call, token.token);
        } else {
          // A streamed body cannot be sent again: the backend gets the answer, its next call the new token.
          renewal.catch(() => undefined);
        }
      }
      if (outcome.kind === 'refused') {
        // Timeouts and unreachable WeChat: the circuit counts them like -1. A body too large says nothing about WeChat.
        if (outcome.reason === 'body_too_large') circuit.abandoned(probe);
        else circuit.failure(this.now(), probe, false);
      } else if (outcome.errcode !== undefined && CIRCUIT_ERRCODES.has(outcome.errcode)) {
        circuit.failure(this.now(), probe, outcome.errcode === 45009);
      } else {
        circuit.success(probe);
      }
      told = true;
      return outcome;
    } finally {
      if (!told) circuit.abandoned(probe);
    }
  }

  private tokenRefusal(api: string, err: unknown): EgressOutcome {
    if (!(err instanceof TokenUnavailableError) && !(err instanceof StoreUnavailableError)) throw err;
    this.metrics.refused(api, 'wx_token_unavailable');
    this.deps.logger.warn({ api, err: err.message }, 'no access_token to call WeChat with');
    return { kind: 'refused', reason: 'wx_token_unavailable', errcode: -1, message: 'wxgw has no valid access_token right now; retry later', retryAfterMs: 1000 };
  }

  private async send(state: AppState, app: EgressApp, call: EgressCall, token: string): Promise<EgressOutcome> {
    const search = new URLSearchParams(call.search);
    search.delete('access_token');
    search.set('access_token', token);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(call.headers)) if (value !== undefined && !HOP.has(name)) headers[name] = value;
    if (call.headers['content-length'] !== undefined && !Buffer.isBuffer(call.body) && call.body !== undefined) headers['content-length'] = call.headers['content-length'];
    const started = performance.now();
    try {
      const res = await state.pool.request({
        method: call.method as 'GET',
        path: `${state.basePath}${call.path}?${search}`,
        headers,
        body: call.body ?? null,
        signal: AbortSignal.timeout(app.timeout),
      });
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(res.headers)) if (value !== undefined && (!HOP.has(name) || name === 'content-length')) out[name] = value;
      const type = String(res.headers['content-type'] ?? '');
      const length = Number(res.headers['content-length'] ?? NaN);
      if (length > MAX_ANSWER) {
        res.body.destroy();
        this.metrics.called(call.path, 'network');
        return { kind: 'refused', reason: 'wx_error', errcode: -1, message: `WeChat's answer is larger than ${MAX_ANSWER} bytes` };
      }
      // WeChat labels JSON (errors included) as application/json or text/plain; media answers are streamed as they are.
      if (/json|text\/plain/i.test(type) && !(length > INSPECT_LIMIT)) {
        const text = await readLimited(res.body, INSPECT_LIMIT).catch(() => undefined);
        if (text !== undefined) {
          const errcode = jsonErrcode(text);
          this.metrics.called(call.path, errcode ?? 0);
          this.logCall(app, call, res.statusCode, errcode, started);
          out['content-length'] = String(Buffer.byteLength(text));
          return { kind: 'answer', statusCode: res.statusCode, headers: out, body: Buffer.from(text), errcode };
        }
      }
      this.metrics.called(call.path, 0);
      this.logCall(app, call, res.statusCode, undefined, started);
      return { kind: 'answer', statusCode: res.statusCode, headers: out, body: res.body, errcode: undefined };
    } catch (err) {
      if (err instanceof RangeError || (err as Error).cause instanceof RangeError) {
        return { kind: 'refused', reason: 'body_too_large', errcode: 44002, message: `request bodies are limited to ${MAX_REQUEST} bytes` };
      }
      const timeout = isTimeout(err);
      this.metrics.called(call.path, timeout ? 'timeout' : 'network');
      this.deps.logger.warn({ request_id: call.requestId, appid: app.appid, api: call.path, wx_failure: timeout ? 'timeout' : 'network', err: timeout ? undefined : (err as Error).message }, 'WeChat API call failed');
      return timeout
        ? { kind: 'refused', reason: 'wx_timeout', errcode: -1, message: `WeChat did not answer ${call.path} within ${app.timeout} ms` }
        : { kind: 'refused', reason: 'wx_error', errcode: -1, message: `WeChat could not be reached for ${call.path}` };
    }
  }

  private logCall(app: EgressApp, call: EgressCall, status: number, errcode: number | undefined, started: number): void {
    const fields = { request_id: call.requestId, appid: app.appid, api: call.path, method: call.method, status, errcode, ms: Math.round((performance.now() - started) * 10) / 10 };
    if (errcode !== undefined && errcode !== 0) this.deps.logger.info(fields, 'WeChat API answered an errcode');
    else this.deps.logger.debug(fields, 'WeChat API call');
  }

  async close(): Promise<void> {
    await Promise.all([...this.apps.values()].map((s) => s.pool.close().catch(() => undefined)));
    this.apps.clear();
  }
}

export function newRequestId(): string {
  return randomBytes(8).toString('hex');
}

function isTimeout(err: unknown): boolean {
  const e = err as Error;
  return e.name === 'TimeoutError' || e.name === 'AbortError' || e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError;
}

/** The errcode of a JSON answer, undefined when it is not a JSON object. */
function jsonErrcode(text: string): number | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? errcodeOf(v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The whole body as text, or a rejection past `limit` bytes. */
export async function readLimited(body: AsyncIterable<Buffer> & { destroy?: () => void }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy?.();
      throw new RangeError(`body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
