// The apps of the `wechat` section: its own keys are the default app, `wechat.apps` names more.
// Each route that verifies pushes, and the login, works with one app as a whole WechatConfig
// (its id and secrets, the shared API settings), so the guards and the login stay one-app code.
import type { WechatConfig } from '../types/policy.js';

export interface ResolvedApp {
  app: WechatConfig;
  /** Where the app's secrets are named in logs, metrics and the rotation state (`wechat.token`, `wechat.apps.NAME.token`). */
  secretKey(field: 'app_secret' | 'token' | 'encoding_aes_key'): string;
}

/** The default app (`name` undefined) or `wechat.apps[name]`; the semantic checks refused unknown names. */
export function wechatApp(wechat: WechatConfig, name: string | undefined): ResolvedApp {
  if (name === undefined) return { app: wechat, secretKey: (field) => `wechat.${field}` };
  const own = wechat.apps?.[name];
  if (!own) throw new Error(`wechat.apps has no app ${name}`);
  const { apps: _, app_secret: _s, token: _t, encoding_aes_key: _k, previous: _p, kind: _c, ...shared } = wechat;
  return { app: { ...shared, ...own }, secretKey: (field) => `wechat.apps.${name}.${field}` };
}
