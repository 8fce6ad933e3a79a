// Parser differentials, where they can be seen from outside: a spelling that a gateway reads one
// way and a backend another. Each probe is compared with the path's canonical answer (baseline):
//   X_WX_OpenID: <marker>   the marker in the answer: the backend folded `_` into `-` and took a
//                           client-chosen identity
//   /API/USER, /api/user;x  refused canonically (401/403/429) but 2xx this way, or carrying
//                           personal data the canonical answer did not: a rule was bypassed
//   HEAD                    the same, for a route bound to GET that another method falls through
//
//   probeDifferentials(prober, report, path, baseline)

import { randomBytes } from 'node:crypto';
import { failed, type Answer, type Prober } from './prober.js';
import { findSensitive, parseJson } from './payload.js';
import type { ReportBuilder } from './report.js';

const REFUSED = new Set([401, 403, 429]);

function ok(status: number): boolean {
  return status >= 200 && status < 300;
}

function sensitiveCount(a: Answer): number {
  const json = parseJson(a);
  return json === undefined ? 0 : findSensitive(json).length;
}

export async function probeDifferentials(prober: Prober, report: ReportBuilder, path: string, baseline: Answer): Promise<void> {
  const url = prober.url(path);
  let found = 0;
  const add = (message: string, evidence: string[]): void => {
    found++;
    report.add({ rule: 'WX6-PARSER-DIFFERENTIAL', level: 'error', message, evidence, url });
  };

  const marker = `oWxgwScan${randomBytes(6).toString('hex')}`;
  const u = await prober.send({ method: 'GET', path, headers: { X_WX_OpenID: marker } });
  if (!failed(u) && u.body.toString('utf8').includes(marker)) {
    add('the backend took X_WX_OpenID as X-WX-OpenID: a client can choose the identity the backend sees', [
      `GET ${url} with X_WX_OpenID: ${marker} -> ${u.status}, the marker is in the answer`,
    ]);
  }

  const variants: { what: string; method: string; path: string }[] = [];
  const upper = path.toUpperCase();
  if (upper !== path) variants.push({ what: 'the path in upper case', method: 'GET', path: upper });
  const q = path.indexOf('?');
  variants.push({ what: 'a ;parameter', method: 'GET', path: q < 0 ? `${path};wxgw-scan` : `${path.slice(0, q)};wxgw-scan${path.slice(q)}` });
  variants.push({ what: 'HEAD instead of GET', method: 'HEAD', path });
  const canonical = sensitiveCount(baseline);
  for (const v of variants) {
    const a = await prober.send({ method: v.method, path: v.path });
    if (failed(a)) continue;
    const evidence = [`GET ${url} -> ${baseline.status}; ${v.method} ${prober.url(v.path)} -> ${a.status}`];
    if (REFUSED.has(baseline.status) && ok(a.status)) {
      add(`${v.what} gets ${a.status} where the canonical request is refused with ${baseline.status}`, evidence);
    } else if (v.method === 'GET' && ok(a.status) && sensitiveCount(a) > canonical) {
      add(`${v.what} gets personal data the canonical request does not (${sensitiveCount(a)} value(s) against ${canonical})`, evidence);
    }
  }
  if (found === 0) {
    report.add({
      rule: 'WX6-PARSER-DIFFERENTIAL',
      level: 'pass',
      message: `no differential seen on ${path} (X_WX_OpenID, ${variants.map((v) => v.what).join(', ')})`,
      evidence: [],
      url,
    });
  }
}
