// Which WeChat app an egress call is made for. The default is the `wechat` section's own app;
// `wechat.apps` names more, chosen by the `X-WX-App` header or by a path prefix
// (`/<name>/cgi-bin/...`, forwarded as `/cgi-bin/...`), each by its name or its appid. The prefix
// wins over the header: it is the base URL one SDK instance was configured with, while a header
// is usually a default of a shared HTTP client. A name that is no app is refused, never served
// as the default app: its calls would go out with another account's token.
import type { IncomingHttpHeaders } from 'node:http';
import { wechatApp } from '../policy/wechat-apps.js';
import type { PolicyConfig, WechatConfig } from '../types/policy.js';
import { API_ROOTS } from '../wechat/api-roots.js';
import { DOCUMENTED_QUOTAS } from '../wechat/quotas.js';

export interface EgressApp {
  /** The wechat.apps name; undefined for the default app. */
  readonly name: string | undefined;
  readonly appid: string;
  readonly secret: string;
  readonly apiBase: URL;
  /** Milliseconds a WeChat call may take. */
  readonly timeout: number;
  readonly quotas: ReadonlyMap<string, number>;
}

/** The header that names the app; never forwarded to WeChat. */
export const APP_HEADER = 'x-wx-app';

/** An app of the policy: callable, or known but without an app_secret (where to add it). */
type Entry = { app: EgressApp } | { missing: string };

interface Directory {
  readonly byKey: ReadonlyMap<string, Entry>;
  readonly fallback: Entry | undefined;
  /** Every callable appid, for messages. */
  readonly appids: readonly string[];
}

export type Selection =
  /**
   * `path` is the API path with any app prefix removed; `chosen` when the header or prefix named
   * the app; `overridden`: an X-WX-App value naming another app, which the prefix won over.
   */
  | { kind: 'app'; app: EgressApp; path: string; chosen: boolean; overridden?: string }
  | { kind: 'unknown'; name: string }
  | { kind: 'no_secret'; message: string };

const directories = new WeakMap<PolicyConfig, Directory | null>();

function entryOf(w: WechatConfig, name: string | undefined): Entry {
  const { app } = wechatApp(w, name);
  if (!app.app_secret) return { missing: name === undefined ? 'wechat.app_secret' : `wechat.apps.${name}.app_secret` };
  return { app: { name, appid: app.appid, secret: app.app_secret, apiBase: app.api_base, timeout: app.api_timeout, quotas: app.quotas ?? DOCUMENTED_QUOTAS } };
}

/** The policy's apps by name and appid, built once per policy (a snapshot's policy never changes). */
function directory(policy: PolicyConfig): Directory | null {
  let d = directories.get(policy);
  if (d !== undefined) return d;
  const w = policy.wechat;
  if (!w) d = null;
  else {
    const byKey = new Map<string, Entry>();
    const fallback = entryOf(w, undefined);
    byKey.set(w.appid, fallback);
    for (const name of Object.keys(w.apps ?? {})) {
      const entry = entryOf(w, name);
      byKey.set(name, entry);
      if (!byKey.has(w.apps![name]!.appid)) byKey.set(w.apps![name]!.appid, entry);
    }
    const appids = [...new Set([...byKey.values()].flatMap((e) => ('app' in e ? [e.app.appid] : [])))];
    d = { byKey, fallback, appids };
  }
  directories.set(policy, d);
  return d;
}

function selected(entry: Entry, path: string, chosen: boolean, overridden?: string): Selection {
  if ('missing' in entry) return { kind: 'no_secret', message: `this app has no app_secret in the policy in force (${entry.missing}), so wxgw holds no access_token for it` };
  return { kind: 'app', app: entry.app, path, chosen, ...(overridden !== undefined && { overridden }) };
}

/** The app a request is for, by its path prefix, else its X-WX-App header, else the default app. */
export function selectApp(req: { headers: IncomingHttpHeaders; path: string }, policy: PolicyConfig): Selection {
  const d = directory(policy);
  const raw = req.headers[APP_HEADER];
  const header = (Array.isArray(raw) ? raw.join(',') : raw)?.trim() || undefined;
  if (!d) return header !== undefined ? { kind: 'unknown', name: header } : { kind: 'no_secret', message: 'the policy in force names no wechat app with an app_secret to call for' };
  const slash = req.path.indexOf('/', 1);
  if (slash > 0) {
    const first = req.path.slice(1, slash);
    if (!API_ROOTS.has(first)) {
      const entry = d.byKey.get(first);
      const second = req.path.slice(slash + 1).split('/', 1)[0]!;
      if (entry) return selected(entry, req.path.slice(slash), true, header !== undefined && d.byKey.get(header) !== entry ? header : undefined);
      if (API_ROOTS.has(second)) return { kind: 'unknown', name: first };
    }
  }
  if (header !== undefined) {
    const entry = d.byKey.get(header);
    return entry ? selected(entry, req.path, true) : { kind: 'unknown', name: header };
  }
  return d.fallback ? selected(d.fallback, req.path, false) : { kind: 'no_secret', message: 'the policy in force names no wechat app with an app_secret to call for' };
}

/** The callable app whose appid is `appid`: how /cgi-bin/token?appid=... picks its app. */
export function appByAppid(policy: PolicyConfig, appid: string): EgressApp | undefined {
  const entry = directory(policy)?.byKey.get(appid);
  return entry && 'app' in entry && entry.app.appid === appid ? entry.app : undefined;
}

/** The appids the egress holds tokens for. */
export function servedAppids(policy: PolicyConfig): readonly string[] {
  return directory(policy)?.appids ?? [];
}

/** The default app (wxgw's own calls: the phone endpoint); undefined without an app_secret. */
export function defaultApp(policy: PolicyConfig): EgressApp | undefined {
  const fallback = directory(policy)?.fallback;
  return fallback && 'app' in fallback ? fallback.app : undefined;
}
