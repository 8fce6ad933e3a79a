// The secrets a snapshot verifies and decrypts with, derived from the policy it was built from
// and the snapshot it replaces: a value that changed keeps the old one as previous for its window.
// The windows: a push signed with the old Token or EncodingAESKey arrives within minutes, so
// `wechat.rotation_window`; a session token lives `identity.session.ttl`, so that long; a Pay
// notification is retried for up to a day, so `wechatpay.rotation_window`. The AppSecret has no
// window: WeChat refuses the old one as soon as it is reset.
import type { PolicyConfig } from '../types/policy.js';
import { rotate, sameSecret, type SecretVersions } from './versions.js';

export type SecretsInForce = ReadonlyMap<string, SecretVersions>;

/** What each rotating secret of `policy` is, with the window its previous value gets. */
function declared(policy: PolicyConfig): [key: string, value: string | undefined, windowMs: number][] {
  const w = policy.wechat;
  const p = policy.wechatpay;
  const session = policy.identity?.session;
  return [
    ['wechat.app_secret', w?.app_secret, 0],
    ['wechat.token', w?.token, w?.rotation_window ?? 0],
    ['wechat.encoding_aes_key', w?.encoding_aes_key, w?.rotation_window ?? 0],
    ['wechatpay.apiv3_key', p?.apiv3_key, p?.rotation_window ?? 0],
    ['identity.session.signing_key', session?.signing_key, session?.ttl ?? 0],
  ];
}

export function secretsInForce(policy: PolicyConfig, before: SecretsInForce | undefined, now: number): SecretsInForce {
  const out = new Map<string, SecretVersions>();
  for (const [key, value, windowMs] of declared(policy)) {
    if (value !== undefined) out.set(key, rotate(key, before?.get(key), value, windowMs, now));
  }
  return out;
}

/** Keys whose value differs between two snapshots, with the end of the previous value's window. */
export function changedSecrets(before: SecretsInForce, after: SecretsInForce): { key: string; previousUntil: number | undefined }[] {
  const out: { key: string; previousUntil: number | undefined }[] = [];
  for (const [key, v] of after) {
    const old = before.get(key);
    if (old && old !== v && !sameSecret(old.current, v.current)) out.push({ key, previousUntil: v.previous?.until });
  }
  return out;
}
