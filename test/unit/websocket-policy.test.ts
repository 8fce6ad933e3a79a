// The `websocket` key: `true` takes the defaults, a mapping sets its own, `false` turns off what
// defaults turned on, and a route that could never serve an upgrade is told so at load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, ENV, accept, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

/** BASE with its routes and defaults replaced: the first route line given is line 21. */
function policy(routes: string[], defaults = 'defaults: { allow: any }'): string {
  return BASE.split('\n').slice(0, 20).join('\n') + '\n' + routes.join('\n') + '\n' + defaults + '\n';
}

const route = (name: string, extra: string[] = []): string[] => [`  - name: ${name}`, `    match: { path_prefix: /${name}/ }`, '    upstream: legacy', ...extra];

test('websocket is off unless set; true takes every default; a mapping replaces the values it names', async () => {
  const { config } = await accept(
    policy([...route('off'), ...route('on', ['    websocket: true']), ...route('tuned', ['    websocket: { idle_timeout: 30s, max_connections: 5 }'])]),
  );
  const [off, on, tuned] = config.routes;
  assert.equal(off!.websocket, undefined);
  assert.deepEqual(on!.websocket, { idle_timeout: 60_000, max_duration: 3_600_000, max_connections: 1000, max_message: 1024 * 1024 });
  assert.deepEqual(tuned!.websocket, { idle_timeout: 30_000, max_duration: 3_600_000, max_connections: 5, max_message: 1024 * 1024 });
});

test('routes inherit defaults.websocket whole, and websocket: false turns it off on one route', async () => {
  const { config } = await accept(
    policy([...route('inherits'), ...route('own', ['    websocket: { max_duration: 5m }']), ...route('opted-out', ['    websocket: false'])], 'defaults: { allow: any, websocket: { idle_timeout: 10s } }'),
  );
  const [inherits, own, optedOut] = config.routes;
  assert.equal(inherits!.websocket?.idle_timeout, 10_000);
  // Replaced whole, not merged: the route's mapping does not keep the default's idle_timeout.
  assert.deepEqual(own!.websocket, { idle_timeout: 60_000, max_duration: 300_000, max_connections: 1000, max_message: 1024 * 1024 });
  assert.equal(optedOut!.websocket, undefined);
});

test('wrong websocket values are refused at their key', async () => {
  const diagnostics = await reject(policy(route('bad', ['    websocket: { idle_timeout: soon, max_connections: 0, extra: 1 }'])));
  const shown = diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`).join('\n');
  assert.match(shown, /routes\[0\]\.websocket\.idle_timeout/);
  assert.match(shown, /routes\[0\]\.websocket\.max_connections/);
  assert.match(shown, /routes\[0\]\.websocket/);
  assert.ok(diagnostics.every((d) => d.line === 24), shown);
  expectDiagnostics(await reject(policy(route('yes', ['    websocket: "yes"']))), [
    { line: 24, col: 16, path: 'routes[0].websocket', message: ['true, false, or a mapping'] },
  ]);
  expectDiagnostics(await reject(policy(route('forever', ['    websocket: { max_duration: 30d }']))), [
    { line: 24, col: 32, path: 'routes[0].websocket.max_duration', message: ['longest timeout Node supports'] },
  ]);
});

test('a callback route cannot take upgrades, its own or inherited; a route without GET is warned about', async () => {
  const wechat = 'wechat: { appid: wx1234567890abcdef, token: "${WX_TOKEN}" }\n';
  const env = { ...ENV, WX_TOKEN: 't0ken' };
  expectDiagnostics(await reject(wechat + policy(route('cb', ['    wechat_callback: {}', '    websocket: true'])), env), [
    { line: 26, col: 16, path: 'routes[0].websocket', message: ['a wechat_callback route cannot take WebSocket upgrades'] },
  ]);
  expectDiagnostics(await reject(wechat + policy(route('cb', ['    wechat_callback: {}']), 'defaults: { allow: any, websocket: true }'), env), [
    { line: 22, col: 5, path: 'routes[0]', message: ['a wechat_callback route cannot take WebSocket upgrades', 'set websocket: false'] },
  ]);
  const { warnings } = await accept(policy(['  - name: posts', '    match: { path: /posts, methods: [POST] }', '    upstream: legacy', '    websocket: true']));
  assert.ok(warnings.some((w) => w.path === 'routes[0].websocket' && /leave out GET/.test(w.message)), JSON.stringify(warnings));
});
