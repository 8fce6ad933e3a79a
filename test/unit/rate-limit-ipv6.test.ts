import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressKey, compileRateLimits } from '../../gateway/guards/rate-limit.js';
import type { RateLimitConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { accept, edit, reject } from '../fixtures/policy/harness.js';

const pos = { file: 'test.yaml', line: 1, col: 1, path: 'routes[0].rate_limit' };

function rule(over: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return { key: 'ip', limit: 2, window: 60_000, scope: 'route', ipv6_prefix: 64, pos, ...over };
}

test('an IPv6 address is counted by its prefix, whatever way it is written; IPv4 by itself', () => {
  const cases: [string, number, string][] = [
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', 64, '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:0:0:0:9', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2::', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:3::9', 64, '2001:db8:1:3::/64'],
    ['fe80::1%eth0', 64, 'fe80:0:0:0::/64'],
    ['::1', 64, '0:0:0:0::/64'],
    ['2001:db8:abcd:12ff::1', 56, '2001:db8:abcd:1200::/56'],
    ['2001:db8:abcd:12ff::1', 48, '2001:db8:abcd::/48'],
    ['2001:db8::1.2.3.4', 128, '2001:db8:0:0:0:0:102:304/128'],
    ['2001:db8::102:304', 128, '2001:db8:0:0:0:0:102:304/128'],
    ['198.51.100.7', 64, '198.51.100.7'],
  ];
  for (const [address, prefix, key] of cases) assert.equal(addressKey(address, prefix), key, `${address}/${prefix}`);
});

test('one /64 shares one budget; another /64 has its own', async () => {
  const guard = compileRateLimits('api', [rule()])!;
  const store = new MemoryStore();
  const admitted = async (client: string) => (await store.hit(guard.rules(undefined, client))).every((r) => r.allowed);
  assert.equal(await admitted('2001:db8:1:2::a'), true);
  assert.equal(await admitted('2001:db8:1:2::b'), true);
  assert.equal(await admitted('2001:db8:1:2:ffff:ffff:ffff:ffff'), false);
  assert.equal(await admitted('2001:db8:1:3::a'), true);
  // An openid rule's address fallback is counted the same way.
  const openid = compileRateLimits('api', [rule({ key: 'openid', fallback_key: 'ip' })])!;
  assert.deepEqual(openid.fallbackRules('2001:db8:1:2::a').map((r) => r.key), ['rl:api:openid:60000:ip:2001:db8:1:2::/64']);
  assert.deepEqual(openid.rules(undefined, '2001:db8:1:2::b').map((r) => r.key), ['rl:api:openid:60000:ip:2001:db8:1:2::/64']);
  await store.close();
});

test('ipv6_prefix: 128 counts single addresses', async () => {
  const guard = compileRateLimits('api', [rule({ limit: 1, ipv6_prefix: 128 })])!;
  assert.notEqual(guard.rules(undefined, '2001:db8:1:2::a')[0]!.key, guard.rules(undefined, '2001:db8:1:2::b')[0]!.key);
});

test('the policy gives every rule ipv6_prefix 64 unless it says otherwise, from 1 to 128', async () => {
  const { config } = await accept(edit({ 24: '    timeout: 1.5s\n    rate_limit: [{ key: ip, limit: 5, window: 1m }, { key: ip, limit: 50, window: 1h, ipv6_prefix: 56 }]' }));
  assert.deepEqual(config.routes[0]!.rate_limits.map((r) => r.ipv6_prefix), [64, 56]);
  const diagnostics = await reject(edit({ 24: '    timeout: 1.5s\n    rate_limit: { key: ip, limit: 5, window: 1m, ipv6_prefix: 129 }' }));
  assert.equal(diagnostics.length, 1);
  assert.equal(diagnostics[0]!.path, 'routes[0].rate_limit.ipv6_prefix');
});
