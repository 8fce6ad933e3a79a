// Pattern 3 from outside: does a lookalike origin (`https://evil-<host>`) or the `null` origin
// (sandboxed frames, file:// pages) get an Access-Control-Allow-Origin, with credentials, on a
// simple GET and on a preflight?
//
//   probeCors(prober, report, path)

import { failed, type Answer, type Prober } from './prober.js';
import type { ReportBuilder } from './report.js';

function header(a: Answer, name: string): string | undefined {
  const v = a.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function lookalikeOrigin(host: string): string {
  return `https://evil-${host.replace(/[[\]:]/g, '-')}`;
}

export async function probeCors(prober: Prober, report: ReportBuilder, path: string): Promise<void> {
  const url = prober.url(path);
  const origins = [lookalikeOrigin(prober.target.host), 'null'];
  const probes: { what: string; origin: string; method: string; headers: Record<string, string> }[] = [
    ...origins.map((origin) => ({ what: 'GET', origin, method: 'GET', headers: { origin, cookie: 'wxgw_scan=1' } })),
    {
      what: 'preflight OPTIONS',
      origin: origins[0]!,
      method: 'OPTIONS',
      headers: { origin: origins[0]!, 'access-control-request-method': 'GET', 'access-control-request-headers': 'content-type' },
    },
  ];
  let bad = 0;
  let credentialed = 0;
  for (const p of probes) {
    const a = await prober.send({ method: p.method, path, headers: p.headers });
    if (failed(a)) continue;
    const allow = header(a, 'access-control-allow-origin');
    const credentials = header(a, 'access-control-allow-credentials')?.trim().toLowerCase() === 'true';
    const evidence = [
      `${p.what} ${url} with Origin: ${p.origin} -> ${a.status}, Access-Control-Allow-Origin: ${allow ?? '(none)'}, ` +
        `Access-Control-Allow-Credentials: ${header(a, 'access-control-allow-credentials') ?? '(none)'}`,
    ];
    if (allow === p.origin && credentials) {
      bad++;
      credentialed++;
      report.add({ rule: 'WX3-CORS-CREDENTIALS', level: 'error', message: `the origin ${p.origin} is allowed with credentials (${p.what})`, evidence, url });
    } else if (allow === '*' && credentials) {
      bad++;
      credentialed++;
      report.add({ rule: 'WX3-CORS-CREDENTIALS', level: 'error', message: `Access-Control-Allow-Origin: * with credentials (${p.what})`, evidence, url });
    } else if (allow === p.origin) {
      bad++;
      report.add({ rule: 'WX3-CORS-WILDCARD', level: 'warning', message: `the origin ${p.origin} is allowed, without credentials (${p.what})`, evidence, url });
    } else if (allow === '*') {
      bad++;
      report.add({ rule: 'WX3-CORS-WILDCARD', level: 'note', message: `Access-Control-Allow-Origin: * without credentials (${p.what}): any site can read this answer, but no cookies go with it`, evidence, url });
    }
  }
  if (bad === 0) {
    report.add({ rule: 'WX3-CORS-CREDENTIALS', level: 'pass', message: `neither ${origins.join(' nor ')} is allowed on ${path}`, evidence: [], url });
  } else if (credentialed === 0) {
    report.add({ rule: 'WX3-CORS-CREDENTIALS', level: 'pass', message: `no origin is allowed with credentials on ${path}`, evidence: [], url });
  }
}
