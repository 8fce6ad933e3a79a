// Structural validation against config/policy.schema.json, with ajv's errors rewritten for
// people: what was found, what is expected, and the closest known word when one is near.

import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { parseCidr, parseHost, parseListen, parseRedisNode, parseRedisUrl, parseUpstreamUrl, redactUrl } from './addresses.js';
import { fromPointer, isWithin, type KeyPath } from './key-path.js';
import { show, type FindingOptions, type Reporter } from './report.js';
import { SCHEMA_ANNOTATIONS, policySchema, type SchemaNode } from './schema.js';
import { isSecret } from './secrets.js';
import { closest } from './suggest.js';
import { parseDuration, parseSeconds, parseSize, type Parsed } from './units.js';

const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true }); // `allow`: `any` or a list
ajv.addVocabulary(SCHEMA_ANNOTATIONS);
const validate = ajv.compile(policySchema);

/** For each `x-kind`, the parser whose explanation beats "does not match the pattern". */
const PARSERS: Record<string, (text: string) => Parsed<unknown>> = {
  duration: parseDuration,
  seconds: parseSeconds,
  size: parseSize,
  listen: parseListen,
  cidr: parseCidr,
  host: parseHost,
  url: parseUpstreamUrl,
  redis_url: parseRedisUrl,
  redis_node: parseRedisNode,
};

export interface SchemaOutcome {
  /** Keys the schema does not know; whatever lies under them is not looked at further. */
  unknownKeys: KeyPath[];
  /** Values already reported as malformed, so later checks stay quiet about them. */
  badValues: KeyPath[];
  /** Keys that an unknown key was probably meant to be (`upstreem` -> routes[0].upstream). */
  suggested: KeyPath[];
}

function typeWord(type: string | undefined): string {
  switch (type) {
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'integer':
    case 'number':
      return 'a number';
    default:
      return 'a value';
  }
}

function found(value: unknown, at: KeyPath): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const kind = typeof value === 'string' ? 'the string' : typeof value === 'number' ? 'the number' : 'the value';
  return isSecret(at) ? kind.replace('the ', 'a ') : `${kind} ${show(value)}`;
}

function unknownKeyMessage(key: string, parent: SchemaNode): string {
  const allowed = Object.keys(parent.properties ?? {});
  const near = closest(key, allowed);
  if (near) return `unknown key \`${key}\`, did you mean \`${near}\`?`;
  return `unknown key \`${key}\`; allowed here: ${allowed.join(', ')}`;
}

function explainKind(schema: SchemaNode, text: string): string | undefined {
  const parse = schema['x-kind'] ? PARSERS[schema['x-kind']] : undefined;
  const parsed = parse?.(text);
  return parsed && !parsed.ok ? parsed.why : undefined;
}

function shown(schema: SchemaNode, value: unknown): string {
  return show((schema['x-kind'] === 'url' || schema['x-kind'] === 'redis_url') && typeof value === 'string' ? redactUrl(value) : value);
}

function valueMessage(e: ErrorObject, schema: SchemaNode, at: KeyPath): string {
  const expected = schema['x-expect'];
  switch (e.keyword) {
    case 'type': {
      if (typeof e.data === 'number' && schema['x-kind']) {
        const why = explainKind(schema, String(e.data));
        if (why) return `${show(e.data)} ${why}`;
      }
      return `expected ${expected ?? typeWord(schema.type)}, found ${found(e.data, at)}`;
    }
    case 'pattern': {
      const why = typeof e.data === 'string' ? explainKind(schema, e.data) : undefined;
      return why ? `${shown(schema, e.data)} ${why}` : `${shown(schema, e.data)} does not fit: expected ${expected}`;
    }
    case 'enum': {
      const allowed = (schema.enum ?? []).map(String);
      const value = String(e.data);
      const refused = schema['x-refused']?.[value];
      if (refused) return `${show(value)} is refused: ${refused}; use ${allowed.join(' or ')}`;
      const near = closest(value, allowed);
      return `${show(e.data)} is not one of ${allowed.join(', ')}${near ? `; did you mean \`${near}\`?` : ''}`;
    }
    case 'const': {
      const allowed = (e.params as { allowedValue: unknown }).allowedValue;
      return `must be ${expected ?? JSON.stringify(allowed)}; found ${found(e.data, at)}`;
    }
    case 'minItems':
      return `must not be an empty list; expected ${expected}`;
    case 'minProperties':
      return `must not be empty; expected ${expected}`;
    case 'minLength':
      return 'must not be empty';
    default:
      return e.message ?? `does not satisfy ${e.keyword}`;
  }
}

/**
 * Validates `data` against the schema. `settled` lists values that an earlier step already
 * reported (failed ${...} references): nothing more is said about them.
 */
export function checkSchema(data: unknown, settled: readonly KeyPath[], report: Reporter): SchemaOutcome {
  const outcome: SchemaOutcome = { unknownKeys: [], badValues: [], suggested: [] };
  if (validate(data)) return outcome;
  const said = new Set<string>();
  const say = (at: KeyPath, message: string, opts: FindingOptions = {}): void => {
    const id = `${JSON.stringify(at)} ${message}`;
    if (said.has(id) || settled.some((s) => isWithin(at, s))) return;
    said.add(id);
    report.error(at, message, opts);
  };

  for (const e of validate.errors ?? []) {
    const at = fromPointer(e.instancePath, data);
    const schema = e.parentSchema as SchemaNode;
    // The nested error names the key itself; a failed `then`/`else` branch says what is wrong.
    if (e.keyword === 'propertyNames' || e.keyword === 'if') continue;
    if (e.propertyName !== undefined) {
      const keyAt = [...at, e.propertyName];
      outcome.badValues.push(keyAt);
      say(keyAt, `\`${e.propertyName}\` is not a valid name; expected ${schema['x-expect']}`, { anchor: 'key' });
    } else if (e.keyword === 'additionalProperties') {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      outcome.unknownKeys.push([...at, key]);
      const near = closest(key, Object.keys(schema.properties ?? {}));
      if (near) outcome.suggested.push([...at, near]);
      say([...at, key], unknownKeyMessage(key, schema), { anchor: 'key' });
    } else if (e.keyword === 'required') {
      const key = (e.params as { missingProperty: string }).missingProperty;
      const about = schema.properties?.[key]?.description?.replace(/\.(\s+[A-Z].*)?$/s, '');
      say([...at, key], `is required but missing${about ? ` (${about})` : ''}`, { missing: [[...at, key]] });
    } else {
      outcome.badValues.push(at);
      say(at, valueMessage(e, schema, at));
    }
  }
  return outcome;
}
