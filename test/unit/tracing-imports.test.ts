// A gateway without `tracing` never loads the OpenTelemetry SDK: only the API (a few small
// modules) is imported statically; the SDK, its exporter and their dependencies come in through
// tracing-sdk.ts, which nothing imports but the dynamic import in tracing.ts. The guard chain
// imports no OpenTelemetry at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const GATEWAY = resolve(dirname(fileURLToPath(import.meta.url)), '../../gateway');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The modules a file imports at run time: `import type` and `import { type x }`-only lines left out. */
function valueImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^import\s+(type\s+)?([^'";]*?)\s*from\s*'([^']+)';/gms)) {
    if (m[1]) continue;
    const names = m[2]!;
    const braces = /^\{([^}]*)\}$/.exec(names.trim());
    if (braces && braces[1]!.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '))) continue;
    out.push(m[3]!);
  }
  return out;
}

test('only tracing-sdk.ts imports the OpenTelemetry SDK, and only a dynamic import loads it', () => {
  const wrong: string[] = [];
  for (const file of sources(GATEWAY)) {
    const rel = relative(GATEWAY, file);
    const text = readFileSync(file, 'utf8');
    for (const spec of valueImports(text)) {
      if (spec.startsWith('@opentelemetry/') && spec !== '@opentelemetry/api' && rel !== 'observability/tracing-sdk.ts') wrong.push(`${rel} imports ${spec}`);
      if (spec.endsWith('/tracing-sdk.js') || spec === './tracing-sdk.js') wrong.push(`${rel} imports tracing-sdk.js statically`);
    }
    if (rel.startsWith('guards/') && text.includes('@opentelemetry/')) wrong.push(`${rel} mentions OpenTelemetry`);
  }
  assert.deepEqual(wrong, []);
  assert.match(readFileSync(join(GATEWAY, 'observability/tracing.ts'), 'utf8'), /import\('\.\/tracing-sdk\.js'\)/);
});
