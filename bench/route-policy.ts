// A policy with many routes shaped like a large real one: nested prefixes, exact paths, some
// host-bound and method-bound, over a few hundred top-level areas. Its certificate files are
// named, not read: validation and snapshots built without certificates do not open them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function policyText(count: number): string {
  const lines = [
    'version: 1',
    'server:',
    '  https: { listen: "127.0.0.1:8443" }',
    'tls:',
    '  certificates:',
    '    - { cert: cert.pem, key: key.pem }',
    'upstreams:',
    '  legacy: { url: "http://127.0.0.1:9000" }',
    'defaults: { allow: any }',
    'routes:',
  ];
  for (let i = 0; i < count; i++) {
    const area = `/area${i % 300}/`;
    const kind = i % 4;
    const match =
      kind === 0
        ? `{ path_prefix: ${area}svc${i}/ }`
        : kind === 1
          ? `{ path: ${area}svc${i}/item, methods: [GET, POST] }`
          : kind === 2
            ? `{ path_prefix: ${area}svc${i}/, host: h${i % 7}.example.com }`
            : `{ path: ${area}svc${i}/login }`;
    lines.push(`  - name: r${i}`, `    match: ${match}`, '    upstream: legacy');
  }
  return lines.join('\n') + '\n';
}

/** Writes the policy and the certificate files it names into `dir`; returns the policy's path. */
export function writePolicy(dir: string, count: number): string {
  for (const f of ['cert.pem', 'key.pem']) writeFileSync(join(dir, f), 'not read by validation\n');
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policyText(count));
  return file;
}
