// Pattern 5, limits: N requests in a row from this one client (bounded by --burst and the cap,
// paced by --rate). Limited = a 429, or a 503 with Retry-After; a RateLimit-Limit header shows a
// limit even when the burst was too small to reach it.
//
//   probeBurst(prober, report, path, n)

import { failed, type Prober } from './prober.js';
import type { ReportBuilder } from './report.js';

export async function probeBurst(prober: Prober, report: ReportBuilder, path: string, n: number): Promise<void> {
  const url = prober.url(path);
  let sent = 0;
  let limitHeader: string | undefined;
  const statuses = new Map<number, number>();
  while (sent < n && prober.fits(1)) {
    const a = await prober.send({ method: 'GET', path });
    sent++;
    if (failed(a)) continue;
    statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    const h = a.headers['ratelimit-limit'] ?? a.headers['x-ratelimit-limit'];
    limitHeader ??= Array.isArray(h) ? h[0] : h;
    if (a.status === 429 || (a.status === 503 && a.headers['retry-after'] !== undefined)) {
      report.add({ rule: 'WX5-NO-RATE-LIMIT', level: 'pass', message: `limited after ${sent} request(s): ${a.status}${a.headers['retry-after'] ? `, Retry-After: ${String(a.headers['retry-after'])}` : ''}`, evidence: [], url });
      return;
    }
  }
  const seen = [...statuses].map(([s, c]) => `${c}× ${s}`).join(', ') || 'no answers';
  const evidence = [`${sent} GET ${url} in a row -> ${seen}`];
  if (limitHeader !== undefined) {
    report.add({ rule: 'WX5-NO-RATE-LIMIT', level: 'note', message: `not limited within ${sent} requests, but the answers announce a limit (RateLimit-Limit: ${limitHeader})`, evidence, url });
  } else {
    report.add({ rule: 'WX5-NO-RATE-LIMIT', level: 'error', message: `${sent} requests in a row from one client were never limited, and no answer announces a limit`, evidence, url });
  }
}
