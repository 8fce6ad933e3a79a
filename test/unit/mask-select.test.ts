// A route's mask chosen by who is asking: the selector compiled from `mask: { by, profiles,
// default }`, the claims the identity verifier lets through to it, and the checks `validate`
// makes on the choice (names that exist, a default that is the strictest, an identity that can
// verify what the choice selects by).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { compileMaskSelector } from '../../gateway/masking/select.js';
import { compileIdentity } from '../../gateway/identity/verify.js';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import type { IdentityConfig, MaskChoiceConfig, SourcePos } from '../../gateway/types/policy.js';
import { accept, reject } from '../fixtures/policy/harness.js';

const POS: SourcePos = { file: 'p.yaml', line: 1, col: 1, path: 'routes[0].mask' };

const byRole: MaskChoiceConfig = {
  by: { kind: 'claim', claim: 'role' },
  choices: [
    { value: 'auditor', profile: 'audit-view' },
    { value: 'staff', profile: 'staff-view' },
    { value: 'ops', profile: 'off' },
  ],
  pos: POS,
};

const plan = (profile: string) => `plan:${profile}`;

test('a claim value picks its profile exactly; anything else gets the fallback', () => {
  const choose = compileMaskSelector(byRole, plan, 'plan:wx-user');
  assert.equal(choose('o-1', { role: 'staff' }), 'plan:staff-view');
  assert.equal(choose('o-1', { role: 'auditor' }), 'plan:audit-view');
  assert.equal(choose('o-1', { role: 'ops' }), 'plan:off');
  // No case folding, no trimming, no prefix: a value is the value written or it is nothing.
  for (const role of ['Staff', 'STAFF', ' staff', 'staff ', 'staf', 'staff-view', '']) {
    assert.equal(choose('o-1', { role }), 'plan:wx-user', JSON.stringify(role));
  }
  // Another type is no value of the list.
  for (const role of [1, true, null, { staff: true }, undefined]) assert.equal(choose('o-1', { role }), 'plan:wx-user', JSON.stringify(role));
  assert.equal(choose('o-1', {}), 'plan:wx-user', 'claim missing');
  assert.equal(choose('o-1', undefined), 'plan:wx-user', 'no verified claims');
  assert.equal(choose(undefined, undefined), 'plan:wx-user', 'unverified');
});

test('a list-valued claim picks the first entry, in the policy order, that it holds', () => {
  const choose = compileMaskSelector(byRole, plan, 'plan:wx-user');
  assert.equal(choose('o', { role: ['staff', 'auditor'] }), 'plan:audit-view', 'auditor is listed first in the policy');
  assert.equal(choose('o', { role: ['reader', 'staff'] }), 'plan:staff-view');
  assert.equal(choose('o', { role: ['Staff', 'reader'] }), 'plan:wx-user');
  assert.equal(choose('o', { role: [] }), 'plan:wx-user');
  assert.equal(choose('o', { role: [['staff']] }), 'plan:wx-user', 'a nested list holds no value');
});

test('a claim named like an Object member is a plain value, never the prototype', () => {
  const cfg: MaskChoiceConfig = { by: { kind: 'claim', claim: 'constructor' }, choices: [{ value: 'staff', profile: 'staff-view' }], pos: POS };
  const choose = compileMaskSelector(cfg, plan, 'plan:wx-user');
  assert.equal(choose('o', {}), 'plan:wx-user');
  assert.equal(choose('o', { constructor: 'staff' }), 'plan:staff-view');
  const proto = compileMaskSelector({ ...cfg, by: { kind: 'claim', claim: 'toString' } }, plan, 'plan:wx-user');
  assert.equal(proto('o', {}), 'plan:wx-user');
});

test('an openid list picks by the verified openid alone', () => {
  const cfg: MaskChoiceConfig = {
    by: { kind: 'openid_list' },
    choices: [
      { value: 'support-agents', openids: ['o-agent-1', 'o-agent-2'], profile: 'staff-view' },
      { value: 'auditors', openids: ['o-audit'], profile: 'audit-view' },
    ],
    pos: POS,
  };
  const choose = compileMaskSelector(cfg, plan, 'plan:wx-user');
  assert.equal(choose('o-agent-2', undefined), 'plan:staff-view');
  assert.equal(choose('o-audit', { role: 'staff' }), 'plan:audit-view', 'claims play no part');
  assert.equal(choose('O-AUDIT', undefined), 'plan:wx-user');
  assert.equal(choose('o-user', undefined), 'plan:wx-user');
  assert.equal(choose(undefined, undefined), 'plan:wx-user');
});

const JWT_SECRET = 'jwt-secret-for-the-legacy-backend-0123456789';
const SESSION_KEY = 'session-signing-key-0123456789abcdef-0123456789';

function identityConfig(): IdentityConfig {
  return {
    session: { signing_key: SESSION_KEY, ttl: 3_600_000, issuer: 'wxgw' },
    jwt: { key: { kind: 'secret', secret: JWT_SECRET }, issuer: 'legacy', openid_claim: 'openid', clock_tolerance: 30_000 },
    token: { header: 'authorization' },
    upstream_header: 'x-wx-openid',
    unionid_header: 'x-wx-unionid',
    pos: POS,
  };
}

const legacyToken = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('legacy').setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

test('a verified outcome carries the claims the policy selects by and no others, from the cache too', async () => {
  const verifier = await compileIdentity(identityConfig(), { claims: ['role', 'dept'] });
  const token = await legacyToken({ openid: 'o-agent', role: 'staff', phone: '13812345678' });
  for (const round of ['verified', 'cached']) {
    const outcome = await verifier.verify(bearer(token));
    assert.equal(outcome.kind, 'verified', round);
    assert.deepEqual(outcome.kind === 'verified' && { ...outcome.claims }, { role: 'staff' }, round);
    assert.ok(outcome.kind === 'verified' && Object.isFrozen(outcome.claims), round);
  }
  // wxgw's own session tokens carry no claim of the backend's.
  const signer = await SessionSigner.create(identityConfig().session!);
  const session = await signer.sign({ openid: 'o-user', sid: 's-1' });
  const fromSession = await compileIdentity(identityConfig(), { signer, claims: ['role', 'sid'] });
  const outcome = await fromSession.verify(bearer(session.token));
  assert.deepEqual(outcome.kind === 'verified' && { ...outcome.claims }, {});
});

test('a token whose signature does not verify carries no claims at all', async () => {
  const verifier = await compileIdentity(identityConfig(), { claims: ['role'] });
  const token = await legacyToken({ openid: 'o-user', role: 'user' });
  const [h, payload, sig] = token.split('.');
  const edited = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), role: 'staff' })).toString('base64url');
  assert.deepEqual(await verifier.verify(bearer(`${h}.${edited}.${sig}`)), { kind: 'refused', reason: 'token_invalid' });
  const forged = await new SignJWT({ openid: 'o-x', role: 'staff' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('legacy').setExpirationTime('1h')
    .sign(new TextEncoder().encode('another-secret-that-is-long-enough-0123456789'));
  assert.deepEqual(await verifier.verify(bearer(forged)), { kind: 'refused', reason: 'token_invalid' });
});

// A policy with a choice; line numbers are asserted below.
const POLICY = (lines: { identity?: string; mask?: string; lists?: string } = {}) => `version: 1
server:
  https: { listen: "0.0.0.0:8443" }
tls:
  certificates:
    - { cert: ../certs/fullchain.pem, key: ../certs/privkey.pem }
${lines.identity ?? `identity:
  jwt: { secret: "${JWT_SECRET}", issuer: legacy }`}
${lines.lists ?? `openid_lists:
  support-agents: [o-agent-1, o-agent-2]`}
mask_profiles:
  wx-user: { partial: { phone: { keep_start: 3, keep_end: 4 } } }
  staff-view: { drop: [idcard] }
  audit-view: { hash: [phone], hash_key: "${'h'.repeat(32)}" }
defaults: { allow: any }
upstreams:
  legacy: { url: "http://127.0.0.1:9000" }
routes:
  - name: users
    match: { path_prefix: /users/ }
    upstream: legacy
    mask:
${lines.mask ?? `      by: claim.role
      profiles: { staff: staff-view, auditor: audit-view, ops: off }
      default: wx-user`}
`;

test('the object form builds the strictest profile as mask and the choice beside it; the string form is unchanged', async () => {
  const { config } = await accept(POLICY());
  const users = config.routes.find((r) => r.name === 'users')!;
  assert.equal(users.mask, 'wx-user');
  assert.deepEqual(users.mask_by?.by, { kind: 'claim', claim: 'role' });
  assert.deepEqual(users.mask_by?.choices, [
    { value: 'staff', profile: 'staff-view' },
    { value: 'auditor', profile: 'audit-view' },
    { value: 'ops', profile: 'off' },
  ]);
  assert.deepEqual({ line: users.mask_by?.pos.line, path: users.mask_by?.pos.path }, { line: 22, path: 'routes[0].mask' });

  const lists = await accept(POLICY({ mask: '      by: openid_list\n      profiles: { support-agents: staff-view }\n      default: wx-user' }));
  assert.deepEqual(lists.config.routes[0]!.mask_by?.choices, [{ value: 'support-agents', openids: ['o-agent-1', 'o-agent-2'], profile: 'staff-view' }]);

  const plain = await accept(POLICY({ mask: '      wx-user' }).replace('    mask:\n      wx-user', '    mask: wx-user'));
  assert.equal(plain.config.routes[0]!.mask, 'wx-user');
  assert.equal(plain.config.routes[0]!.mask_by, undefined);
});

async function problems(text: string): Promise<string[]> {
  return (await reject(text)).filter((d) => d.severity === 'error').map((d) => `${d.line} ${d.path}: ${d.message}`);
}

test('validate names the key of a profile that does not exist, in profiles and in default', async () => {
  assert.deepEqual(await problems(POLICY({ mask: '      by: claim.role\n      profiles: { staff: staf-view }\n      default: wx-usr' })), [
    '24 routes[0].mask.profiles.staff: `staf-view` is not defined under mask_profiles; did you mean `staff-view`?',
    '25 routes[0].mask.default: `wx-usr` is not defined under mask_profiles; did you mean `wx-user`?',
  ]);
});

test('validate refuses a choice without default, or with default off', async () => {
  const missing = await problems(POLICY({ mask: '      by: claim.role\n      profiles: { staff: staff-view }' }));
  assert.equal(missing.length, 1, missing.join('\n'));
  assert.match(missing[0]!, /^23 routes\[0\]\.mask\.default: is required but missing/);
  assert.deepEqual(await problems(POLICY({ mask: '      by: claim.role\n      profiles: { staff: staff-view }\n      default: off' })), [
    '25 routes[0].mask.default: cannot be `off`: default is what unverified callers get, so it must be the strictest profile',
  ]);
});

test('validate refuses a choice the route could never verify', async () => {
  const noIdentity = await problems(POLICY({ identity: '' }));
  assert.deepEqual(noIdentity, [
    '22 routes[0].mask.by: needs an `identity` section: without one no request carries a verified identity, so every caller would get default',
  ]);
  const claimWithoutJwt = await problems(POLICY({ identity: `identity:\n  session: { signing_key: "${SESSION_KEY}" }` }));
  assert.ok(
    claimWithoutJwt.some((p) => p.startsWith('23 routes[0].mask.by: selects by a token claim, but the policy has no `identity.jwt`')),
    claimWithoutJwt.join('\n'),
  );
});

test('validate names an openid list that does not exist, and a caller two lists would pick', async () => {
  const unknown = await problems(POLICY({ mask: '      by: openid_list\n      profiles: { support-agent: staff-view }\n      default: wx-user' }));
  assert.deepEqual(unknown, ['24 routes[0].mask.profiles.support-agent: `support-agent` is not defined under openid_lists; did you mean `support-agents`?']);
  const overlap = await problems(
    POLICY({
      lists: 'openid_lists:\n  support-agents: [o-agent-1, o-agent-2]\n  auditors: [o-audit, o-agent-2]',
      mask: '      by: openid_list\n      profiles: { support-agents: staff-view, auditors: audit-view }\n      default: wx-user',
    }),
  );
  assert.equal(overlap.length, 1, overlap.join('\n'));
  assert.match(overlap[0]!, /^25 routes\[0\]\.mask\.profiles\.auditors: lists an openid that openid_lists\.support-agents lists too/);
  assert.doesNotMatch(overlap[0]!, /o-agent-2/, 'the openid itself is not quoted');
});

test('validate refuses a `by` that is neither a claim nor openid_list', async () => {
  const bad = await problems(POLICY({ mask: '      by: header.x-role\n      profiles: { staff: staff-view }\n      default: wx-user' }));
  assert.deepEqual(bad, ['23 routes[0].mask.by: `header.x-role` does not fit: expected `claim.` and a claim name (e.g. claim.role), or `openid_list`']);
});
