// Which WeChat app an egress call is made for. Today the egress serves the policy's single
// `wechat` app; with several apps this is the one place that picks one (by path prefix or header).
import type { IncomingHttpHeaders } from 'node:http';
import type { PolicyConfig } from '../types/policy.js';
import { DOCUMENTED_QUOTAS } from '../wechat/quotas.js';

export interface EgressApp {
  readonly appid: string;
  readonly secret: string;
  readonly apiBase: URL;
  /** Milliseconds a WeChat call may take. */
  readonly timeout: number;
  readonly quotas: ReadonlyMap<string, number>;
}

/** The app a request is for; undefined when the policy has none the egress can call for. */
export function appFor(_req: { headers: IncomingHttpHeaders; path: string }, policy: PolicyConfig): EgressApp | undefined {
  const w = policy.wechat;
  if (!w?.app_secret) return undefined;
  return { appid: w.appid, secret: w.app_secret, apiBase: w.api_base, timeout: w.api_timeout, quotas: w.quotas ?? DOCUMENTED_QUOTAS };
}
