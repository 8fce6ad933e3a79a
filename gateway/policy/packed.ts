// A loaded policy as bytes a worker thread can post, and back. A worker's message carries Maps
// but not URL objects, and a message of 10,000 routes would be decoded in one long stretch of
// the receiving event loop: so URLs travel as their href with the place they stood, and routes
// travel in chunks that are decoded one at a time with the event loop free in between.
//
//   pack(loaded)   -> PackedPolicy       (in the worker; throws Uncarriable)
//   unpack(packed) -> Promise<LoadedPolicy>  (on the main thread, yielding between chunks)
import { deserialize, serialize } from 'node:v8';
import type { LoadedPolicy } from './load.js';
import type { Diagnostic, PolicyConfig, RouteConfig } from '../types/policy.js';

/** Decoding this many routes takes well under a millisecond. */
const ROUTES_PER_CHUNK = 200;

/** A property name, array index or Map key, from the config's root. */
type Step = string | number;

export interface PackedPolicy {
  /** The config without its routes, v8-serialized. */
  readonly head: Uint8Array;
  /** The routes, ROUTES_PER_CHUNK to a chunk, in order. */
  readonly routes: Uint8Array[];
  /** Where URL objects stood, and their href. */
  readonly urls: { at: Step[]; href: string }[];
  readonly warnings: Diagnostic[];
}

/** The config holds something a worker cannot hand over as it is (a class instance, a function). */
export class Uncarriable extends Error {
  override readonly name = 'Uncarriable';
}

const PLAIN = new Set<unknown>([Object.prototype, null, Array.prototype]);

/** What the structured clone carries as it is. */
const isData = (v: unknown): boolean => v === null || !['object', 'function', 'symbol'].includes(typeof v);

/**
 * A copy of `value` with URLs replaced by their href (recorded in `urls`). Whatever the
 * structured clone would silently change (a class instance loses its prototype) is refused.
 */
function plain(value: unknown, at: Step[], urls: PackedPolicy['urls']): unknown {
  if (typeof value === 'function' || typeof value === 'symbol') throw new Uncarriable(`a ${typeof value} at ${at.join('.')}`);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof URL) {
    urls.push({ at, href: value.href });
    return value.href;
  }
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, plain(v, [...at, k as Step], urls)]));
  // A Set's members have no place to put a URL back at; primitives are all a config holds in one.
  if (value instanceof Set && [...value].every(isData)) return new Set(value);
  if (!PLAIN.has(Object.getPrototypeOf(value))) throw new Uncarriable(`a ${value.constructor?.name ?? 'class'} instance at ${at.join('.')}`);
  if (Array.isArray(value)) return value.map((v, i) => plain(v, [...at, i], urls));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = plain(v, [...at, k], urls);
  return out;
}

export function pack(loaded: LoadedPolicy): PackedPolicy {
  const urls: PackedPolicy['urls'] = [];
  const { routes, ...head } = plain(loaded.config, [], urls) as PolicyConfig;
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < routes.length; i += ROUTES_PER_CHUNK) chunks.push(serialize(routes.slice(i, i + ROUTES_PER_CHUNK)));
  return { head: serialize(head), routes: chunks, urls, warnings: loaded.warnings };
}

function put(root: unknown, at: Step[], value: unknown): void {
  let node = root as Record<Step, unknown> | Map<Step, unknown>;
  for (const [i, step] of at.entries()) {
    const last = i === at.length - 1;
    if (node instanceof Map) {
      if (last) node.set(step, value);
      else node = node.get(step) as typeof node;
    } else if (last) node[step] = value;
    else node = node[step] as typeof node;
  }
}

export async function unpack(packed: PackedPolicy): Promise<LoadedPolicy> {
  const config = deserialize(packed.head) as PolicyConfig;
  const routes: RouteConfig[] = [];
  for (const chunk of packed.routes) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const r of deserialize(chunk) as RouteConfig[]) routes.push(r);
  }
  config.routes = routes;
  for (const { at, href } of packed.urls) put(config, at, new URL(href));
  return { config, warnings: packed.warnings };
}
