import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accept, edit } from '../fixtures/policy/harness.js';
import { listenerChange } from '../../gateway/runtime/reloader.js';

test('listener changes need a restart and are named; everything else reloads', async () => {
  const base = (await accept(edit({}))).config;
  const changed = async (lines: Record<number, string>): Promise<string | undefined> => listenerChange(base, (await accept(edit(lines))).config);
  assert.equal(await changed({ 3: '  https: { listen: "0.0.0.0:9443" }' }), 'server.https.listen changed from 0.0.0.0:8443 to 0.0.0.0:9443; restart wxgw to apply it');
  assert.equal(await changed({ 4: '  http: { listen: "0.0.0.0:8080", mode: off }' }), 'server.http.mode changed from redirect to off; restart wxgw to apply it');
  assert.equal(await changed({ 4: '' }), 'server.http.listen changed from 0.0.0.0:8080 to off; restart wxgw to apply it');
  assert.equal(await changed({ 5: '  admin: { listen: "127.0.0.1:9902" }' }), 'server.admin.listen changed from 127.0.0.1:9901 to 127.0.0.1:9902; restart wxgw to apply it');
  assert.match((await changed({ 8: '  limits: { body: 3mb, headers_timeout: 5s, request_timeout: 1m }' }))!, /^server\.limits\.body changed from 2097152 to 3145728; restart/);
  assert.equal(await changed({ 7: '  trusted_proxies: [10.0.0.0/8]', 8: '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m }\n  shutdown_timeout: 5s' }), undefined);
  // Read when the shutdown starts, so a reload changes it.
  assert.equal(await changed({ 8: '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m }\n  drain_delay: 1m' }), undefined);
});

test('server.http2 and http2_streams need a restart; http2_resets reloads', async () => {
  const base = (await accept(edit({}))).config;
  const changed = async (lines: Record<number, string>): Promise<string | undefined> => listenerChange(base, (await accept(edit(lines))).config);
  const limits = '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m';
  assert.equal(await changed({ 8: `${limits} }\n  http2: false` }), 'server.http2 changed from true to false; restart wxgw to apply it');
  assert.equal(await changed({ 8: `${limits}, http2_streams: 50 }` }), 'server.limits.http2_streams changed from 100 to 50; restart wxgw to apply it');
  // Read as each connection arrives, so a reload changes it for new connections.
  assert.equal(await changed({ 8: `${limits}, http2_resets: 20 }` }), undefined);
  assert.equal(await changed({ 8: `${limits} }\n  http2: true` }), undefined, 'the default spelled out is no change');
});

