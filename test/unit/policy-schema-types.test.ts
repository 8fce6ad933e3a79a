// The policy's shape is written twice: config/policy.schema.json (editors and the validator read
// it) and RawPolicy in gateway/policy/build.ts (the code that reads validated data). Its defaults
// are written twice too: the schema's `default`s and build.ts's DEFAULTS. This test walks each
// pair together, so that neither copy can gain, lose or change a key the other does not.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { DEFAULTS } from '../../gateway/policy/build.js';
import { schemaFile } from '../../gateway/policy/schema.js';

/** The part of JSON Schema 2020-12 the policy schema uses to describe shapes. */
interface S {
  type?: string | string[];
  properties?: Record<string, S>;
  required?: string[];
  additionalProperties?: S | boolean;
  items?: S;
  $ref?: string;
  enum?: unknown[];
  const?: unknown;
  oneOf?: S[];
  anyOf?: S[];
  allOf?: S[];
  if?: S;
  then?: S;
  else?: S;
  not?: S;
  propertyNames?: S;
  $defs?: Record<string, S>;
  default?: unknown;
}

const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as S;

function target(ref: string): S {
  assert.ok(ref.startsWith('#/'), `only local $refs are followed, not ${ref}`);
  let node: unknown = schema;
  for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  assert.ok(node && typeof node === 'object', `${ref} points at nothing`);
  return node as S;
}

/** The node with what its $ref and allOf add merged in; `required` and `properties` add up. */
function flatten(node: S): S {
  const parts = [...(node.$ref ? [flatten(target(node.$ref))] : []), ...(node.allOf ?? []).map(flatten)];
  const { $ref: _ref, allOf: _all, ...own } = node;
  let out: S = {};
  for (const part of [...parts, own]) {
    const required = [...new Set([...(out.required ?? []), ...(part.required ?? [])])];
    const properties = out.properties || part.properties ? { ...out.properties, ...part.properties } : undefined;
    out = { ...out, ...part, ...(required.length && { required }), ...(properties && { properties }) };
  }
  return out;
}

/** The $refs a node goes through, outermost first. */
function refsOf(node: S): string[] {
  return node.$ref ? [node.$ref, ...refsOf(target(node.$ref))] : [];
}

// --- One model for both sides ------------------------------------------------------------------

type Kind = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';

interface Shape {
  /** undefined: the schema names no type here. JSON Schema's integer counts as TS's number. */
  kinds?: Set<Kind>;
  /** Literal strings, when the strings are an enum/const or a literal union; undefined: any string. */
  strings?: Set<string>;
  numbers?: Set<number>;
  object?: { props: Map<string, { required: boolean; value: Shape }>; map?: Shape };
  items?: Shape;
  /** TypeScript types the walk does not understand (any, unknown, functions...). */
  odd: string[];
  /** Schema branches (if, or then/else/oneOf/anyOf without a type) that only add conditions. */
  conditional: S[];
}

const shape = (): Shape => ({ odd: [], conditional: [] });

function unionSets<T>(sets: (Set<T> | undefined)[]): Set<T> | undefined {
  return sets.some((s) => s === undefined) ? undefined : new Set(sets.flatMap((s) => [...s!]));
}

/** A value that may have any of these shapes; objects merge, a key required only if all require it. */
function union(shapes: Shape[]): Shape {
  if (shapes.length === 1) return shapes[0]!;
  const out = shape();
  out.kinds = unionSets(shapes.map((s) => s.kinds));
  const having = (k: Kind) => shapes.filter((s) => s.kinds?.has(k));
  if (having('string').length) out.strings = unionSets(having('string').map((s) => s.strings));
  if (having('number').length) out.numbers = unionSets(having('number').map((s) => s.numbers));
  const objects = shapes.flatMap((s) => (s.object ? [s.object] : []));
  if (objects.length) {
    const props = new Map<string, { required: boolean; value: Shape }>();
    for (const name of new Set(objects.flatMap((o) => [...o.props.keys()]))) {
      const found = objects.map((o) => o.props.get(name));
      const values = found.flatMap((p) => (p ? [p.value] : []));
      props.set(name, { required: found.every((p) => p?.required), value: union(values) });
    }
    const maps = objects.flatMap((o) => (o.map ? [o.map] : []));
    out.object = { props, ...(maps.length && { map: union(maps) }) };
  }
  const items = shapes.flatMap((s) => (s.items ? [s.items] : []));
  if (items.length) out.items = union(items);
  out.odd = shapes.flatMap((s) => s.odd);
  out.conditional = shapes.flatMap((s) => s.conditional);
  return out;
}

/** A branch narrowed by what its parent node already says (its type, its properties). */
function within(base: Shape, alt: Shape): Shape {
  const given = Object.fromEntries(Object.entries(alt).filter(([, v]) => v !== undefined));
  const out: Shape = { ...base, ...given, odd: [], conditional: [...base.conditional, ...alt.conditional] };
  if (base.kinds && alt.kinds) out.kinds = new Set([...alt.kinds].filter((k) => base.kinds!.has(k)));
  if (base.object && alt.object) {
    const map = alt.object.map ?? base.object.map;
    out.object = { props: new Map([...base.object.props, ...alt.object.props]), ...(map && { map }) };
  }
  return out;
}

const kindOf = (v: unknown): Kind => (v === null ? 'null' : Array.isArray(v) ? 'array' : (typeof v as Kind));

/** A branch that says what type the value is, rather than adding conditions to the parent's. */
const isAlternative = (b: S): boolean =>
  b.type !== undefined || b.const !== undefined || b.enum !== undefined || b.$ref !== undefined || !!b.oneOf || !!b.anyOf;

function schemaShape(node: S): Shape {
  const n = flatten(node);
  const own = shape();
  const types = n.type === undefined ? undefined : [n.type].flat();
  const literals = n.const !== undefined ? [n.const] : n.enum;
  if (types) own.kinds = new Set(types.map((t) => (t === 'integer' ? 'number' : (t as Kind))));
  else if (literals) own.kinds = new Set(literals.map(kindOf));
  else if (n.properties || typeof n.additionalProperties === 'object') own.kinds = new Set(['object']);
  if (literals?.some((v) => typeof v === 'string')) own.strings = new Set(literals.filter((v) => typeof v === 'string'));
  if (literals?.some((v) => typeof v === 'number')) own.numbers = new Set(literals.filter((v) => typeof v === 'number'));
  if (own.kinds?.has('object')) {
    const required = new Set(n.required);
    const props = new Map(Object.entries(n.properties ?? {}).map(([name, c]) => [name, { required: required.has(name), value: schemaShape(c) }]));
    own.object = { props, ...(typeof n.additionalProperties === 'object' && { map: schemaShape(n.additionalProperties) }) };
  }
  if (own.kinds?.has('array') && n.items) own.items = schemaShape(n.items);

  // A key required only under a condition (the root's `else: { required: [tls] }`) is optional to
  // RawPolicy, so conditional branches add no `required`; the names they use must still be the object's.
  const branches = [...(n.oneOf ?? []), ...(n.anyOf ?? []), ...(n.then ? [n.then] : []), ...(n.else ? [n.else] : [])];
  own.conditional = [...branches.filter((b) => !isAlternative(b)), ...(n.if ? [n.if] : [])];
  const alternatives = branches.filter(isAlternative);
  return alternatives.length ? union(alternatives.map((b) => within(own, schemaShape(b)))) : own;
}

// --- RawPolicy, read by the TypeScript compiler ------------------------------------------------

const buildFile = fileURLToPath(new URL('../../gateway/policy/build.ts', import.meta.url));
const tsconfig = fileURLToPath(new URL('../../tsconfig.json', import.meta.url));

function tsShape(type: ts.Type, checker: ts.TypeChecker): Shape {
  const parts: Shape[] = [];
  for (const t of type.isUnion() ? type.types : [type]) {
    const one = shape();
    const f = t.flags;
    if (f & ts.TypeFlags.Undefined) continue; // an optional key's `| undefined`; its flag is compared instead
    if (f & ts.TypeFlags.Null) one.kinds = new Set(['null']);
    else if (t.isStringLiteral()) Object.assign(one, { kinds: new Set(['string']), strings: new Set([t.value]) });
    else if (f & (ts.TypeFlags.String | ts.TypeFlags.TemplateLiteral | ts.TypeFlags.StringMapping)) one.kinds = new Set(['string']);
    else if (t.isNumberLiteral()) Object.assign(one, { kinds: new Set(['number']), numbers: new Set([t.value]) });
    else if (f & ts.TypeFlags.Number) one.kinds = new Set(['number']);
    else if (f & ts.TypeFlags.BooleanLike) one.kinds = new Set(['boolean']);
    else if (checker.isArrayType(t) || checker.isTupleType(t)) {
      one.kinds = new Set(['array']);
      one.items = union(checker.getTypeArguments(t as ts.TypeReference).map((e) => tsShape(e, checker)));
    } else if (f & (ts.TypeFlags.Object | ts.TypeFlags.Intersection) && !checker.getSignaturesOfType(t, ts.SignatureKind.Call).length) {
      one.kinds = new Set(['object']);
      const props = new Map(
        checker.getPropertiesOfType(t).map((p) => [
          p.name,
          { required: !(p.flags & ts.SymbolFlags.Optional), value: tsShape(checker.getTypeOfSymbol(p), checker) },
        ]),
      );
      const index = checker.getIndexInfosOfType(t).find((i) => i.keyType.flags & ts.TypeFlags.String);
      one.object = { props, ...(index && { map: tsShape(index.type, checker) }) };
    } else one.odd.push(checker.typeToString(t));
    parts.push(one);
  }
  return parts.length ? union(parts) : shape();
}

function rawPolicyShape(): Shape {
  const config = ts.getParsedCommandLineOfConfigFile(tsconfig, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  assert.ok(config, `cannot read ${tsconfig}`);
  const program = ts.createProgram({ rootNames: [buildFile], options: { ...config.options, noEmit: true } });
  const source = program.getSourceFile(buildFile)!;
  const decl = source.statements.find((s) => (ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) && s.name.text === 'RawPolicy');
  assert.ok(decl, `${buildFile} declares no RawPolicy`);
  const checker = program.getTypeChecker();
  return tsShape(checker.getTypeAtLocation((decl as ts.InterfaceDeclaration).name), checker);
}

// --- The comparison ----------------------------------------------------------------------------

const show = (set: Iterable<unknown>): string => [...set].map((v) => JSON.stringify(v)).sort().join(' | ');
const sameSet = <T>(a: Set<T>, b: Set<T>): boolean => a.size === b.size && [...a].every((v) => b.has(v));

/** Names a conditional branch gives must be the object's own (and so RawPolicy's). */
function checkConditional(cond: S, sh: Shape, at: string, out: string[]): void {
  for (const [name, child] of Object.entries(flatten(cond).properties ?? {})) {
    const prop = sh.object?.props.get(name);
    if (!prop) out.push(`${at}.${name}: named in a conditional branch of the schema but not a property there`);
    else checkConditional(child, prop.value, `${at}.${name}`, out);
  }
}

function compare(s: Shape | undefined, t: Shape | undefined, at: string, out: string[]): void {
  if (!s || !t) {
    out.push(`${at}: ${s ? 'RawPolicy' : 'the schema'} does not say what this holds`);
    return;
  }
  for (const odd of t.odd) out.push(`${at}: RawPolicy has a type the schema cannot express: ${odd}`);
  for (const cond of s.conditional) checkConditional(cond, s, at, out);
  if (!s.kinds || !t.kinds) {
    out.push(`${at}: ${s.kinds ? 'RawPolicy' : 'the schema'} names no type`);
    return;
  }
  if (!sameSet(s.kinds, t.kinds)) out.push(`${at}: the schema allows ${show(s.kinds)}, RawPolicy ${show(t.kinds)}`);
  const literals = [['strings', s.strings, t.strings], ['numbers', s.numbers, t.numbers]] as [string, Set<unknown>?, Set<unknown>?][];
  for (const [what, a, b] of literals)
    if (a && b && !sameSet(a, b)) out.push(`${at}: the schema allows the ${what} ${show(a)}, RawPolicy ${show(b)}`);
  if (s.kinds.has('array') && t.kinds.has('array')) compare(s.items, t.items, `${at}[]`, out);
  if (!s.object || !t.object) return;
  const [sp, tp] = [s.object.props, t.object.props];
  for (const name of new Set([...sp.keys(), ...tp.keys()])) {
    const [a, b] = [sp.get(name), tp.get(name)];
    if (!a || !b) out.push(`${at}.${name}: only in ${a ? 'the schema' : 'RawPolicy'}`);
    else {
      const [was, is] = a.required ? ['required', 'optional'] : ['optional', 'required'];
      if (a.required !== b.required) out.push(`${at}.${name}: ${was} in the schema, ${is} in RawPolicy`);
      compare(a.value, b.value, `${at}.${name}`, out);
    }
  }
  if (s.object.map || t.object.map) compare(s.object.map, t.object.map, `${at}.*`, out);
}

test('RawPolicy in build.ts has the shape config/policy.schema.json gives the policy', () => {
  const out: string[] = [];
  compare(schemaShape(schema), rawPolicyShape(), '$', out);
  assert.deepEqual(out, [], `schema and RawPolicy disagree:\n${out.join('\n')}`);
});

// --- Defaults ----------------------------------------------------------------------------------

/**
 * Where each DEFAULTS value sits in the schema: `.` steps into a key, `[]` into items, `*` into a
 * map. An empty list is a DEFAULTS value the schema cannot show as a `default`; say why beside it.
 */
const DEFAULT_PATHS: Record<string, string[]> = {
  pay_egress_api_base: ['wechatpay.egress.api_base'],
  pay_egress_refresh: ['wechatpay.egress.refresh'],
  pay_egress_timeout: ['wechatpay.egress.timeout'],
  pay_egress_max_skew: ['wechatpay.egress.max_skew'],
  pay_egress_max_body: ['wechatpay.egress.max_body'],
  http_mode: ['server.http.mode'],
  body: ['server.limits.body'],
  handshake_timeout: ['server.limits.handshake_timeout'],
  send_timeout: ['server.limits.send_timeout'],
  http2: ['server.http2'],
  http2_streams: ['server.limits.http2_streams'],
  http2_resets: ['server.limits.http2_resets'],
  semicolons: ['server.paths.semicolons'],
  header_underscores: ['server.headers.underscores'],
  ipv6_prefix: ['defaults.rate_limit.ipv6_prefix', 'defaults.rate_limit[].ipv6_prefix'],
  rate_limit_mode: ['defaults.rate_limit.mode', 'defaults.rate_limit[].mode'],
  headers_timeout: ['server.limits.headers_timeout'],
  request_timeout: ['server.limits.request_timeout'],
  shutdown_timeout: ['server.shutdown_timeout'],
  drain_delay: ['server.drain_delay'],
  request_id_header: ['server.request_id.header'],
  request_id_trust: ['server.request_id.trust'],
  min_version: ['tls.min_version'],
  roots: ['tls.roots'],
  expiry_warning: ['tls.expiry_warning'],
  upstream_timeout: ['upstreams.*.timeout'],
  upstream_balance: ['upstreams.*.balance'],
  upstream_connect_timeout: ['upstreams.*.connect_timeout'],
  upstream_connections: ['upstreams.*.connections'],
  upstream_queue_timeout: ['upstreams.*.queue_timeout'],
  eject_failures: ['upstreams.*.eject.failures'],
  eject_cooldown: ['upstreams.*.eject.cooldown'],
  eject_max_cooldown: ['upstreams.*.eject.max_cooldown'],
  health_interval: ['upstreams.*.health.interval'],
  health_timeout: ['upstreams.*.health.timeout'],
  health_healthy: ['upstreams.*.health.healthy'],
  health_unhealthy: ['upstreams.*.health.unhealthy'],
  strip_response_headers: ['server.strip_response_headers'],
  cors_methods: ['defaults.cors.methods'],
  cors_max_age: ['defaults.cors.max_age'],
  json_charset: ['routes[].json_charset'],
  store_kind: ['store.kind'],
  key_prefix: ['store.key_prefix'],
  command_timeout: ['store.command_timeout'],
  on_unavailable: ['store.on_unavailable'],
  api_base: ['wechat.api_base'],
  api_timeout: ['wechat.api_timeout'],
  wechat_rotation_window: ['wechat.rotation_window'],
  wechatpay_rotation_window: ['wechatpay.rotation_window'],
  session_ttl: ['identity.session.ttl'],
  session_issuer: ['identity.session.issuer'],
  decrypt_max_age: ['identity.decrypt.max_age'],
  openid_claim: ['identity.jwt.openid_claim'],
  clock_tolerance: ['identity.jwt.clock_tolerance'],
  token_header: ['identity.token.header'],
  upstream_header: ['identity.upstream_header'],
  unionid_header: ['identity.unionid_header'],
  partial_char: ['mask_profiles.*.partial.*.char'],
  stream_above: ['mask_profiles.*.stream_above'],
  on_mask_error: ['routes[].on_mask_error'],
  callback_max_skew: ['routes[].wechat_callback.max_skew', 'routes[].wechatpay_notify.max_skew'],
  callback_max_body: ['routes[].wechat_callback.max_body', 'routes[].wechatpay_notify.max_body'],
  delivery_attempts: ['routes[].wechat_callback.retry.attempts', 'routes[].wechatpay_notify.retry.attempts'],
  delivery_backoff: ['routes[].wechat_callback.retry.backoff', 'routes[].wechatpay_notify.retry.backoff'],
  delivery_max_backoff: ['routes[].wechat_callback.retry.max_backoff', 'routes[].wechatpay_notify.retry.max_backoff'],
  push_dedupe_window: ['routes[].wechat_callback.dedupe_window'],
  pay_dedupe_window: ['routes[].wechatpay_notify.dedupe_window'],
  delivery_concurrency: ['store.delivery_queue.concurrency'],
  delivery_takeover_after: ['store.delivery_queue.takeover_after'],
  delivery_dead_letters: ['store.delivery_queue.dead_letters'],
  alert_check_interval: ['alerts.check_interval'],
  alert_attempts: ['alerts.delivery.attempts'],
  alert_backoff: ['alerts.delivery.backoff'],
  alert_max_backoff: ['alerts.delivery.max_backoff'],
  alert_timeout: ['alerts.delivery.timeout'],
  alert_queue: ['alerts.delivery.queue'],
  alert_cooldown: ['alerts.rules[].cooldown'],
  alert_resolved: ['alerts.rules[].resolved'],
  alert_reason: ['alerts.rules[].reason'],
  alert_more_than: ['alerts.rules[].more_than'],
  alert_window: ['alerts.rules[].window'],
  alert_store_for: ['alerts.rules[].for'],
  alert_before_expiry: ['alerts.rules[].before_expiry'],
  websocket_idle_timeout: ['routes[].websocket.idle_timeout', 'defaults.websocket.idle_timeout'],
  websocket_max_duration: ['routes[].websocket.max_duration', 'defaults.websocket.max_duration'],
  websocket_max_connections: ['routes[].websocket.max_connections', 'defaults.websocket.max_connections'],
  websocket_max_message: ['routes[].websocket.max_message', 'defaults.websocket.max_message'],
  sample_ratio: ['tracing.sample_ratio'],
  service_name: ['tracing.service_name'],
  trust_incoming: ['tracing.trust_incoming'],
};

/**
 * Schema defaults that are not in DEFAULTS: each is an empty list, false, 0 or 'route' written where
 * build.ts reads the key (the function named), since a named constant would say no more.
 */
const DEFAULTS_ELSEWHERE: string[] = [
  'server.trusted_headers', // buildConfig: server.trusted_headers ?? []
  'mask_profiles.*.key_match', // masking/compile.ts: folds unless key_match is 'exact'
  'server.trusted_proxies', // buildConfig: server.trusted_proxies ?? []
  'tls.hsts.include_subdomains', // buildConfig: tls.hsts.include_subdomains ?? false
  'tls.hsts.preload', // buildConfig: tls.hsts.preload ?? false
  'store.cluster.tls', // clusterConfig: c.tls ?? false
  'store.sentinels.tls', // sentinelConfig: s.tls ?? false
  'upstreams.*.preserve_host', // upstreamConfig: u.preserve_host ?? false
  'defaults.cors.credentials', // corsConfig: cors.credentials ?? false
  'defaults.cors.headers', // corsConfig: cors.headers ?? []
  'defaults.cors.expose_headers', // corsConfig: cors.expose_headers ?? []
  'defaults.identity_required', // buildConfig: r.identity_required ?? defaults.identity_required ?? false
  'defaults.rate_limit.scope', // rateLimits: r.scope ?? 'route' (one rule written as a mapping)
  'defaults.rate_limit[].scope', // rateLimits: r.scope ?? 'route' (a list of rules)
  'mask_profiles.*.partial.*.keep_start', // maskProfile: rule.keep_start ?? 0
  'mask_profiles.*.partial.*.keep_end', // maskProfile: rule.keep_end ?? 0
  'routes[].wechat_callback.decrypt', // callbackConfig: c.decrypt ?? false
  'identity.logout.scope', // identityConfig: i.logout.scope ?? 'session'
  'routes[].wechatpay_notify.decrypt', // callbackConfig: c.decrypt ?? false
  'routes[].wechat_callback.delivery', // callbackConfig: async only when c.delivery is 'async'
  'routes[].wechatpay_notify.delivery', // callbackConfig: async only when c.delivery is 'async'
  'server.workers', // cluster/primary.ts workerCount: server.workers ?? 'auto' (absent stays absent in the config)
];

/** The schema node a path names (before its $ref is followed), looked up through $refs and branches. */
function nodeAt(path: string): S {
  let node = schema;
  for (const step of path.split('.').flatMap((seg) => seg.split(/(?=\[\])/))) {
    const n = flatten(node);
    const places = [n, ...[...(n.oneOf ?? []), ...(n.anyOf ?? []), ...(n.then ? [n.then] : []), ...(n.else ? [n.else] : [])].map(flatten)];
    const next = places
      .map((p) => (step === '[]' ? p.items : step === '*' ? p.additionalProperties : p.properties?.[step]))
      .find((c): c is S => typeof c === 'object');
    assert.ok(next, `the schema has no ${path} (stuck at ${step})`);
    node = next;
  }
  return node;
}

/** The node that gives a path's default: the path's own node, or what its $ref points at. */
function defaultNode(path: string): S | undefined {
  const node = nodeAt(path);
  return [node, ...refsOf(node).map(target)].find((n) => n.default !== undefined);
}

/** Every schema node that has a default, with a JSON pointer to it. */
function schemaDefaults(node: S, at: string, out: Map<S, string>): Map<S, string> {
  if (node.default !== undefined) out.set(node, at);
  const each = (key: string, children: Record<string, S> | S[] | undefined) => {
    for (const [k, child] of Object.entries(children ?? {})) schemaDefaults(child, `${at}/${key}/${k}`, out);
  };
  each('properties', node.properties);
  each('$defs', node.$defs);
  for (const key of ['oneOf', 'anyOf', 'allOf'] as const) each(key, node[key]);
  for (const key of ['items', 'additionalProperties', 'if', 'then', 'else', 'not', 'propertyNames'] as const) {
    const child = node[key];
    if (typeof child === 'object') schemaDefaults(child, `${at}/${key}`, out);
  }
  return out;
}

/** Header names are compared without case, as HTTP does: the schema may spell them X-WX-OpenID. */
function comparable(value: unknown, node: S): unknown {
  if (typeof value === 'string' && refsOf(node).includes('#/$defs/header')) return value.toLowerCase();
  const items = flatten(node).items;
  if (Array.isArray(value) && items) return value.map((v) => comparable(v, items));
  return value;
}

test('DEFAULTS in build.ts are the defaults config/policy.schema.json shows, and every schema default is applied', () => {
  const out: string[] = [];
  const covered = new Set<S>();
  for (const key of Object.keys(DEFAULTS)) if (!DEFAULT_PATHS[key]) out.push(`DEFAULTS.${key} has no schema path in DEFAULT_PATHS`);
  for (const [key, paths] of Object.entries(DEFAULT_PATHS)) {
    if (!(key in DEFAULTS)) {
      out.push(`DEFAULT_PATHS names ${key}, which is not in DEFAULTS`);
      continue;
    }
    const value: unknown = DEFAULTS[key as keyof typeof DEFAULTS];
    for (const path of paths) {
      const node = nodeAt(path);
      const holder = defaultNode(path);
      if (!holder) out.push(`$.${path}: DEFAULTS.${key} is ${JSON.stringify(value)}, the schema gives no default`);
      else {
        covered.add(holder);
        if (!isDeepStrictEqual(comparable(value, node), comparable(holder.default, node)))
          out.push(`$.${path}: DEFAULTS.${key} is ${JSON.stringify(value)}, the schema's default ${JSON.stringify(holder.default)}`);
      }
    }
  }
  for (const path of DEFAULTS_ELSEWHERE) {
    const holder = defaultNode(path);
    if (holder) covered.add(holder);
    else out.push(`$.${path} is listed in DEFAULTS_ELSEWHERE but the schema gives no default there`);
  }
  for (const [node, at] of schemaDefaults(schema, '#', new Map())) {
    if (!covered.has(node)) out.push(`${at}: default ${JSON.stringify(node.default)} is in neither DEFAULT_PATHS nor DEFAULTS_ELSEWHERE`);
  }
  assert.deepEqual(out, [], `schema defaults and DEFAULTS disagree:\n${out.join('\n')}`);
});
