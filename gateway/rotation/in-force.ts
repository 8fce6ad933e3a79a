// The secrets a snapshot verifies and decrypts with, derived from the policy it was built from
// and the snapshot it replaces: a value that changed keeps the old one as previous for its window.
// The windows: a push signed with the old Token or EncodingAESKey arrives within minutes, so
// `wechat.rotation_window`; a session token lives `identity.session.ttl`, so that long; a Pay
// notification is retried for up to a day, so `wechatpay.rotation_window`. The AppSecret has no
// window: WeChat refuses the old one as soon as it is reset.
import type { PolicyConfig } from '../types/policy.js';
import { rotate, sameSecret, type SecretVersions } from './versions.js';

export type SecretsInForce = ReadonlyMap<string, SecretVersions>;

type Declared = [key: string, value: string | undefined, windowMs: number, previous: string | undefined, until: number | undefined];

/** What each rotating secret of `policy` is, the window a replaced value gets, and the previous value the policy names. */
function declared(policy: PolicyConfig): Declared[] {
  const w = policy.wechat;
  const p = policy.wechatpay;
  const session = policy.identity?.session;
  return [
    ['wechat.app_secret', w?.app_secret, 0, undefined, undefined],
    ['wechat.token', w?.token, w?.rotation_window ?? 0, w?.previous?.token, w?.previous?.until],
    ['wechat.encoding_aes_key', w?.encoding_aes_key, w?.rotation_window ?? 0, w?.previous?.encoding_aes_key, w?.previous?.until],
    ['wechatpay.apiv3_key', p?.apiv3_key, p?.rotation_window ?? 0, p?.previous?.apiv3_key, p?.previous?.until],
    ['identity.session.signing_key', session?.signing_key, session?.ttl ?? 0, session?.previous?.signing_key, session?.previous?.until],
    // Each app under wechat.apps rotates as the default app does, in the same window.
    ...Object.entries(w?.apps ?? {}).flatMap(([name, a]): Declared[] => [
      [`wechat.apps.${name}.app_secret`, a.app_secret, 0, undefined, undefined],
      [`wechat.apps.${name}.token`, a.token, w?.rotation_window ?? 0, a.previous?.token, a.previous?.until],
      [`wechat.apps.${name}.encoding_aes_key`, a.encoding_aes_key, w?.rotation_window ?? 0, a.previous?.encoding_aes_key, a.previous?.until],
    ]),
  ];
}

export function secretsInForce(policy: PolicyConfig, before: SecretsInForce | undefined, now: number): SecretsInForce {
  const out = new Map<string, SecretVersions>();
  for (const [key, value, windowMs, previous, until] of declared(policy)) {
    if (value === undefined) continue;
    const { declared: _, ...carried } = rotate(key, before?.get(key), value, windowMs, now);
    out.set(key, previous !== undefined && until !== undefined ? { ...carried, declared: { value: previous, until } } : carried);
  }
  return out;
}

/** Keys whose value differs between two snapshots, with the end of the previous value's window. */
export function changedSecrets(before: SecretsInForce, after: SecretsInForce): { key: string; previousUntil: number | undefined }[] {
  const out: { key: string; previousUntil: number | undefined }[] = [];
  for (const [key, v] of after) {
    const old = before.get(key);
    if (old && !sameSecret(old.current, v.current)) out.push({ key, previousUntil: v.previous?.until });
  }
  return out;
}
