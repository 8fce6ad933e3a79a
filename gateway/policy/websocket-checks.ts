// Checks of `websocket` (a route's, or defaults' that routes inherit) the schema cannot express:
// its timers must be ones Node can run, and a route can only take upgrades it can serve. A signed
// callback reads a body an upgrade never has, and a route without GET never sees the GET an
// upgrade is.
import { isRecord, type KeyPath } from './key-path.js';
import type { Reporter } from './report.js';
import { checkDuration, checkSize } from './value-checks.js';

function checkLimits(report: Reporter, websocket: unknown, at: KeyPath): void {
  if (!isRecord(websocket)) return;
  checkDuration(report, websocket.idle_timeout, [...at, 'idle_timeout'], true);
  checkDuration(report, websocket.max_duration, [...at, 'max_duration'], true);
  checkSize(report, websocket.max_message, [...at, 'max_message']);
}

export function checkWebSockets(routes: unknown, defaults: Record<string, unknown>, report: Reporter): void {
  checkLimits(report, defaults.websocket, ['defaults', 'websocket']);
  if (!Array.isArray(routes)) return;
  routes.forEach((route: unknown, i) => {
    if (!isRecord(route)) return;
    const own = route.websocket !== undefined;
    const websocket = own ? route.websocket : defaults.websocket;
    if (own) checkLimits(report, websocket, ['routes', i, 'websocket']);
    if (websocket === undefined || websocket === false) return;
    const at: KeyPath = own ? ['routes', i, 'websocket'] : ['routes', i];
    const inherited = own ? '' : ' (inherited from defaults.websocket; set websocket: false on this route)';
    for (const callback of ['wechat_callback', 'wechatpay_notify']) {
      if (route[callback] !== undefined) report.error(at, `a ${callback} route cannot take WebSocket upgrades${inherited}`);
    }
    const methods = isRecord(route.match) ? route.match.methods : undefined;
    if (Array.isArray(methods) && !methods.some((m) => typeof m === 'string' && m.toUpperCase() === 'GET')) {
      report.warn(at, `this route's methods leave out GET, so no WebSocket upgrade (a GET) can reach it${inherited}`);
    }
  });
}
