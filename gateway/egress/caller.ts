// The egress as wxgw's own WeChat client: the phone endpoint's calls take the same token, budgets
// and circuits as the backend's.
import type { WechatCallResult, WechatCaller } from '../identity/phone.js';
import type { Snapshot } from '../snapshot.js';
import { defaultApp } from './apps.js';
import type { Egress } from './egress.js';

export function egressCaller(egress: Egress, source: { readonly current: Snapshot }): WechatCaller {
  return {
    async postJson(path, body, requestId): Promise<WechatCallResult> {
      const app = defaultApp(source.current.policy);
      if (!app) return { kind: 'refused', reason: 'wx_token_unavailable', message: 'the policy in force names no wechat app with an app_secret' };
      const outcome = await egress.call(app, {
        method: 'POST',
        path,
        search: new URLSearchParams(),
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify(body)),
        requestId,
      });
      if (outcome.kind === 'refused') {
        return { kind: 'refused', reason: outcome.reason, message: outcome.message, ...(outcome.retryAfterMs !== undefined && { retryAfterMs: outcome.retryAfterMs }) };
      }
      if (Buffer.isBuffer(outcome.body)) {
        try {
          const answer = JSON.parse(outcome.body.toString('utf8')) as unknown;
          if (typeof answer === 'object' && answer !== null && !Array.isArray(answer)) return { kind: 'ok', answer: answer as Record<string, unknown> };
        } catch {
          // falls through to the refusal below
        }
      } else {
        outcome.body.destroy();
      }
      return { kind: 'refused', reason: 'wx_error', message: `WeChat answered ${path} with something other than a JSON object` };
    },
  };
}
