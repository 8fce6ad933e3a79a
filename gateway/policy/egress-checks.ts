// Checks of what the WeChat API egress and the phone endpoint ask of the rest of the policy:
// both call WeChat with the account's access_token, which needs the AppSecret.
import { isRecord } from './key-path.js';
import { neverMatches } from './match-path.js';
import { show, type Reporter } from './report.js';
import { closest } from './suggest.js';
import { API_ROOTS } from '../wechat/api-roots.js';

export function checkEgress(data: Record<string, unknown>, report: Reporter, upstreams: string[], profiles: string[]): void {
  const wechat = isRecord(data.wechat) ? data.wechat : undefined;
  const server = isRecord(data.server) ? data.server : undefined;
  const identity = isRecord(data.identity) ? data.identity : undefined;
  const hasSecret = wechat !== undefined && wechat.app_secret !== undefined;
  if (server && isRecord(server.egress) && !hasSecret) {
    report.error(['server', 'egress'], 'needs `wechat.appid` and `wechat.app_secret`: the egress fetches the access_token the backend no longer holds', { anchor: 'key' });
  }
  // Every app of wechat.apps can be named by an egress call (X-WX-App or /<name>/ prefix).
  const apps = server && isRecord(server.egress) && wechat && isRecord(wechat.apps) ? wechat.apps : {};
  for (const [name, app] of Object.entries(apps)) {
    if (isRecord(app) && app.app_secret === undefined) {
      report.warn(['wechat', 'apps', name], `has no \`app_secret\`: egress calls for it (X-WX-App: ${name} or the /${name}/ prefix) are refused with wx_token_unavailable; add one if the backend calls WeChat's API for this app`, { anchor: 'key' });
    }
    if (API_ROOTS.has(name)) {
      report.warn(['wechat', 'apps', name], `is also the first segment of WeChat API paths (/${name}/...): the egress cannot take it as a path prefix; name the app with X-WX-App or its appid, or rename it`, { anchor: 'key' });
    }
  }
  const phone = identity && isRecord(identity.phone) ? identity.phone : undefined;
  if (!phone) return;
  if (!hasSecret) report.error(['identity', 'phone'], 'needs `wechat.appid` and `wechat.app_secret` to call getuserphonenumber with the access_token', { anchor: 'key' });
  if (!isRecord(identity!.session) && !isRecord(identity!.jwt)) {
    report.error(['identity', 'phone'], 'needs a verified caller: add `identity.session` (wxgw login) or `identity.jwt`', { anchor: 'key' });
  }
  if (typeof phone.path === 'string') {
    const why = neverMatches(phone.path);
    if (why) report.error(['identity', 'phone', 'path'], `${show(phone.path)} ${why}`);
    const login = isRecord(identity!.login) ? identity!.login : undefined;
    if (login && login.path === phone.path) report.error(['identity', 'phone', 'path'], `${show(phone.path)} is identity.login.path already; give the phone endpoint its own path`);
    const routes = Array.isArray(data.routes) ? data.routes : [];
    routes.forEach((route: unknown, i) => {
      if (isRecord(route) && isRecord(route.match) && route.match.path === phone.path) {
        report.error(['routes', i, 'match', 'path'], `${show(phone.path)} is identity.phone.path, which the gateway answers itself; give this route another path`);
      }
    });
  }
  const defaults = isRecord(data.defaults) ? data.defaults : undefined;
  if (!defaults || defaults.allow === undefined) {
    report.error(['identity', 'phone'], 'takes its allow from `defaults.allow`, which is missing; add e.g. `defaults: { allow: any }`', { anchor: 'key' });
  }
  const up = isRecord(phone.upstream) ? phone.upstream : undefined;
  if (up && typeof up.upstream === 'string' && !upstreams.includes(up.upstream)) {
    const near = closest(up.upstream, upstreams);
    report.error(['identity', 'phone', 'upstream', 'upstream'], `${show(up.upstream)} is not defined under upstreams${near ? `; did you mean \`${near}\`?` : ''}`);
  }
  if (up && typeof up.path === 'string') {
    const why = neverMatches(up.path);
    if (why) report.error(['identity', 'phone', 'upstream', 'path'], `${show(up.path)} ${why}`);
  }
  if (up && typeof up.mask === 'string' && up.mask !== 'off' && !profiles.includes(up.mask)) {
    const near = closest(up.mask, profiles);
    report.error(['identity', 'phone', 'upstream', 'mask'], `${show(up.mask)} is not defined under mask_profiles${near ? `; did you mean \`${near}\`?` : ''}`);
  }
}
