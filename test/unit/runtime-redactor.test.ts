// The log redactor a snapshot compiles from its mask profiles: what it hides in log fields, error
// text, request paths and queries, and that it never changes what it was given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { compileMaskProfile } from '../../gateway/masking/compile.js';
import { compileLogRedactor, type LogRedactor } from '../../gateway/masking/redact.js';
import { redactingLogger } from '../../gateway/observability/logger.js';
import type { MaskProfileConfig } from '../../gateway/types/policy.js';

function profile(keys: string[], detect: MaskProfileConfig['detect']): MaskProfileConfig {
  return {
    name: 'test',
    drop: keys.map((key) => ({ kind: 'key' as const, key })),
    partial: [],
    replace: [],
    hash: [],
    detect,
    content_types: [],
    stream_above: 1 << 20,
    pos: { file: 'policy.yaml', line: 1, col: 1, path: 'mask_profiles.test' },
  };
}

const redactor = compileLogRedactor([compileMaskProfile(profile(['session_key', 'phone'], ['cn_mobile', 'email']))]);

test('fields: masked keys, credentials and bodies to three levels; deeper, Errors and the input untouched', () => {
  const input = {
    session_key: 's1',
    ok: 1,
    upstream: { phone: '13812345678', user: { session_key: 's2', deeper: { phone: 'too deep' } } },
    list: [{ phone: 'p' }],
    headers: { authorization: 'Bearer x', cookie: 'c' },
    err: Object.assign(new Error('e'), { phone: 'kept for the err serializer' }),
    body: '{"anything":1}',
    absent: undefined,
  };
  const copy = structuredClone({ ...input, err: undefined });
  const out = redactor.fields(input) as Record<string, any>;
  assert.equal(out.session_key, '[redacted]');
  assert.equal(out.ok, 1);
  assert.equal(out.upstream.phone, '[redacted]');
  assert.equal(out.upstream.user.session_key, '[redacted]');
  assert.deepEqual(out.upstream.user.deeper, { phone: 'too deep' }, 'pino paths reach three levels; so does this');
  assert.deepEqual(out.list, [{ phone: '[redacted]' }]);
  assert.ok(Array.isArray(out.list));
  assert.deepEqual(out.headers, { authorization: '[redacted]', cookie: '[redacted]' });
  assert.equal(out.err, input.err, 'an Error is left to the err serializer');
  assert.equal(out.body, '[redacted]');
  assert.deepEqual({ ...input, err: undefined }, copy, 'the logged object is never changed');
  const clean = { a: 1, b: { c: 2 } };
  assert.equal(redactor.fields(clean), clean, 'nothing to hide: no copy');
});

test('fields: an own __proto__ key stays a key', () => {
  const parsed = JSON.parse('{"__proto__":{"phone":"13812345678"}}') as Record<string, unknown>;
  const out = redactor.fields(parsed);
  assert.equal(JSON.stringify(out), '{"__proto__":{"phone":"[redacted]"}}');
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
});

test('error: fields one level down, message and stack scrubbed as text', () => {
  const shown = pino.stdSerializers.err(Object.assign(new Error('upstream said {"session_key":"SK1"} call 13812345678'), { response: { body: 'x', phone: 'y' } }));
  const out = redactor.error(shown) as Record<string, any>;
  assert.equal(out.message, 'upstream said {"session_key":"[redacted]"} call 138****5678');
  assert.ok(!out.stack.includes('13812345678') && !out.stack.includes('SK1'));
  assert.deepEqual(out.response, { body: '[redacted]', phone: '[redacted]' });
});

test('path: detected tokens in segments are masked, other digits kept', () => {
  assert.equal(redactor.path('/api/users/13812345678'), '/api/users/138****5678');
  assert.equal(redactor.path('/api/users/13812345678/orders/2023112612345670'), '/api/users/138****5678/orders/2023112612345670');
  assert.equal(redactor.path('/mail/bob@example.com/x'), '/mail/b**@example.com/x');
  assert.equal(redactor.path('/v1/items/12'), '/v1/items/12');
});

test('query: masked keys redacted, values through the detectors (decoded), the rest kept', () => {
  assert.equal(redactor.query('phone=13812345678&tel=13912345678&page=2'), 'phone=[redacted]&tel=139****5678&page=2');
  assert.equal(redactor.query('to=%2B86%20139-1234-5678'), `to=${encodeURIComponent('+86 139******5678')}`);
  assert.equal(redactor.query('mail=bob%40example.com&q=a+b'), `mail=${encodeURIComponent('b**@example.com')}&q=a+b`);
  assert.equal(redactor.query('p%68one=1&authorization=x'), 'p%68one=[redacted]&authorization=[redacted]', 'names are compared decoded');
  assert.equal(redactor.query('13812345678'), '138****5678', 'a bare value');
  assert.equal(redactor.query('x=%E0%A4%A'), 'x=%E0%A4%A', 'a bad escape is examined as it is');
  assert.equal(redactor.query(''), '');
});

test('without profiles: credentials and bodies only, text and paths unchanged', () => {
  const none = compileLogRedactor([]);
  assert.deepEqual(none.fields({ phone: '13812345678', cookie: 'c' }), { phone: '13812345678', cookie: '[redacted]' });
  assert.equal(none.text('call 13812345678'), 'call 13812345678');
  assert.equal(none.path('/u/13812345678'), '/u/13812345678');
  assert.equal(none.query('cookie=1&phone=13812345678'), 'cookie=[redacted]&phone=13812345678');
});

test('a redacting logger applies the redactor in force at each line', () => {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  let current: LogRedactor = compileLogRedactor([]);
  const log = redactingLogger(pino(dest), () => current);
  log.info({ contact: '13812345678' }, 'before');
  current = compileLogRedactor([compileMaskProfile(profile(['contact'], ['cn_mobile']))]);
  log.info({ contact: '13812345678', nested: { contact: 'x' } }, 'after');
  log.error({ err: new Error('call 13812345678') }, 'failed');
  const [before, after, failed] = lines.map((l) => JSON.parse(l) as Record<string, any>);
  assert.equal(before!.contact, '13812345678');
  assert.equal(after!.contact, '[redacted]');
  assert.equal(after!.nested.contact, '[redacted]');
  assert.equal(failed!.err.message, 'call 138****5678');
});
