// Pattern 2 from outside: what the plain-HTTP port does (redirect, to where, and whether a Host
// of another domain ends up in the Location: an open redirect), and the HSTS header of the HTTPS
// answers.
//
//   probePlainHttp(prober, report, path)
//   judgeHsts(report, url, answer)

import { failed, type Answer, type Prober } from './prober.js';
import type { ReportBuilder } from './report.js';

/** Six months: below it, a browser that saw the header once forgets it too soon. */
const HSTS_MIN = 15_552_000;
const YEAR = 31_536_000;

/** A host no deployment owns, to see whether the redirect takes the client's word for its Host. */
export const FOREIGN_HOST = 'wxgw-scan.invalid';

function header(a: Answer, name: string): string | undefined {
  const v = a.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function describe(a: Answer): string {
  const location = header(a, 'location');
  return `${a.status}${location !== undefined ? ` Location: ${location}` : ''}`;
}

export async function probePlainHttp(prober: Prober, report: ReportBuilder, path: string): Promise<void> {
  const { host, httpPort } = prober.target;
  const url = prober.url(path, true);
  const own = await prober.send({ method: 'GET', path, plain: true });
  if (failed(own)) {
    report.add({ rule: 'WX2-PLAIN-HTTP', level: 'pass', message: `nothing answers plain HTTP on port ${httpPort}`, evidence: [`GET ${url}: ${own.error}`], url });
    return;
  }
  const location = header(own, 'location');
  const evidence = [`GET ${url} -> ${describe(own)}`];
  if (own.status < 300 || own.status >= 400 || location === undefined) {
    report.add({ rule: 'WX2-PLAIN-HTTP', level: 'error', message: `plain HTTP answers ${own.status} instead of redirecting to https`, evidence, url });
  } else if (!/^https:\/\//i.test(location)) {
    report.add({ rule: 'WX2-PLAIN-HTTP', level: 'error', message: `plain HTTP redirects, but not to https: ${location}`, evidence, url });
  } else {
    report.add({ rule: 'WX2-PLAIN-HTTP', level: 'pass', message: `plain HTTP redirects with ${own.status} to ${location}`, evidence, url });
  }
  if (own.status < 300 || own.status >= 400) return;

  const foreign = await prober.send({ method: 'GET', path, plain: true, headers: { host: FOREIGN_HOST } });
  if (failed(foreign)) return;
  const to = header(foreign, 'location');
  const ev = [`GET ${url} with Host: ${FOREIGN_HOST} -> ${describe(foreign)}`];
  let target = '';
  try {
    target = to === undefined ? '' : new URL(to, `http://${host}`).hostname;
  } catch {
    target = to ?? '';
  }
  if (target.toLowerCase() === FOREIGN_HOST) {
    report.add({ rule: 'WX2-OPEN-REDIRECT', level: 'error', message: 'the redirect sends clients to the host the request named', evidence: ev, url });
  } else {
    report.add({ rule: 'WX2-OPEN-REDIRECT', level: 'pass', message: 'the redirect keeps its own host whatever the request names', evidence: ev, url });
  }
}

/** localhost, or an address in 127.0.0.0/8 or ::1: the scanner's own machine. */
function loopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost') || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export function judgeHsts(report: ReportBuilder, url: string, answer: Answer): void {
  const value = header(answer, 'strict-transport-security');
  if (value === undefined) {
    report.add({ rule: 'WX2-HSTS', level: 'error', message: 'no Strict-Transport-Security header', evidence: [`GET ${url} -> ${answer.status}, no Strict-Transport-Security`], url });
    return;
  }
  const evidence = [`Strict-Transport-Security: ${value}`];
  const maxAge = /max-age\s*=\s*"?(\d+)/i.exec(value);
  const seconds = maxAge ? Number(maxAge[1]) : 0;
  const subdomains = /(^|;)\s*includesubdomains\s*(;|$)/i.test(value);
  if (seconds < HSTS_MIN && loopbackHost(new URL(url).hostname)) {
    // A browser keeps HSTS for localhost as for any name: a long one on a developer's machine
    // breaks every other plain-HTTP service there, so a short one is right for a local trial.
    report.add({ rule: 'WX2-HSTS', level: 'note', message: `HSTS max-age is ${seconds} s: right for a trial on this machine; a public host wants six months (${HSTS_MIN} s) or more`, evidence, url });
  } else if (seconds < HSTS_MIN) {
    report.add({ rule: 'WX2-HSTS', level: 'warning', message: `HSTS max-age is ${seconds} s, less than six months (${HSTS_MIN} s); a year is usual`, evidence, url });
  } else if (!subdomains) {
    report.add({ rule: 'WX2-HSTS', level: 'note', message: 'HSTS without includeSubDomains: subdomains can still be reached over plain HTTP', evidence, url });
  } else {
    report.add({ rule: 'WX2-HSTS', level: 'pass', message: `HSTS for ${seconds >= YEAR ? 'a year or more' : `${seconds} s`}, includeSubDomains`, evidence, url });
  }
}
