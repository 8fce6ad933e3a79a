// The arrows between gateway/'s modules point one way (ARCHITECTURE.md): each folder (or
// top-level file) has a layer, and a module imports only from its own folder or a lower layer, a
// type import included. The test reads the import statements of every source file, so an arrow
// that points back up fails here, in CI, with the file and the import named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const GATEWAY = resolve(dirname(fileURLToPath(import.meta.url)), '../../gateway');

/** Higher imports lower. Leaves (-1) are read by everyone and import nothing of the gateway's. */
const LAYERS: Record<string, number> = {
  errors: -1,
  'shown-path': -1,
  'package-root': -1,
  types: -1,
  net: 0,
  tls: 0,
  observability: 1,
  wechat: 1,
  masking: 1,
  rotation: 1,
  store: 2,
  identity: 3,
  guards: 4,
  policy: 5,
  snapshot: 6,
  proxy: 7,
  'pay-egress': 7,
  egress: 7,
  delivery: 7,
  runtime: 8,
  main: 9,
  demo: 10,
  scan: 10,
  cluster: 10,
  cli: 11,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The folder under gateway/, or the file's name for top-level files. */
function unit(file: string): string {
  const rel = relative(GATEWAY, file);
  const slash = rel.indexOf('/');
  return slash < 0 ? rel.replace(/\.ts$/, '') : rel.slice(0, slash);
}

const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm;

test('every gateway module has a layer', () => {
  const unknown = [...new Set(sources(GATEWAY).map(unit))].filter((u) => !(u in LAYERS));
  assert.deepEqual(unknown, [], 'give these folders or files a layer in LAYERS');
});

test('imports point down: nothing imports a module above it', () => {
  const upward: string[] = [];
  for (const file of sources(GATEWAY)) {
    const from = unit(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const target = resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
      const to = unit(target);
      if (to === from) continue;
      if (!(LAYERS[to]! < LAYERS[from]!)) upward.push(`${relative(GATEWAY, file)} imports ${m[1]} (${from} ${LAYERS[from]} -> ${to} ${LAYERS[to]})`);
    }
  }
  assert.deepEqual(upward, [], `imports that point up or sideways:\n${upward.join('\n')}`);
});

// The scanner probes from outside like any client, and lints through the policy loader: it must
// not reach into the running gateway, whose layers sit below it.
const SCAN_MAY_NOT_IMPORT = ['proxy', 'runtime', 'main', 'snapshot', 'guards', 'store', 'identity'];

test('scan imports no part of the running gateway', () => {
  const inside = sources(join(GATEWAY, 'scan')).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(IMPORT)]
      .map((m) => unit(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'))))
      .filter((to) => SCAN_MAY_NOT_IMPORT.includes(to))
      .map((to) => `${relative(GATEWAY, file)} imports ${to}`),
  );
  assert.deepEqual(inside, []);
});

test('the check sees imports of every form it must', () => {
  // Guards the pattern itself: if it stopped matching, the check above would pass vacuously.
  const sample = "import type { A } from '../types/policy.js';\nimport { b,\n  c } from './x.js';\nexport { d } from '../e.js';\n";
  assert.deepEqual([...sample.matchAll(IMPORT)].map((m) => m[1]), ['../types/policy.js', './x.js', '../e.js']);
  const counted = sources(GATEWAY).reduce((n, f) => n + [...readFileSync(f, 'utf8').matchAll(IMPORT)].length, 0);
  assert.ok(counted > 100, `only ${counted} relative imports found`);
});
