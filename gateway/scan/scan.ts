// One scan of a live endpoint, in an order that keeps the probes from spoiling each other: TLS,
// then each path's canonical answer (payload, HSTS), CORS and differentials, the callback, the
// plain-HTTP port, and the burst last, since a limit it trips would refuse what follows.
//
//   scanEndpoint(target, opts, report) -> RequestCounts

import type { X509Certificate } from 'node:crypto';
import { probeBurst } from './burst.js';
import { probeCallback } from './callbacks.js';
import { probeCors } from './cors.js';
import { probeDifferentials } from './differential.js';
import { judgeHsts, probePlainHttp } from './http-probes.js';
import { judgePayload } from './payload.js';
import { CapReached, failed, Prober, type ProberOptions, type Target } from './prober.js';
import type { ReportBuilder, RequestCounts } from './report.js';
import { probeTls } from './tls-probe.js';

export interface EndpointOptions extends ProberOptions {
  paths: string[];
  callback?: string;
  burst: number;
  privateRoots: X509Certificate[];
  caFile?: string;
  now: Date;
}

export async function scanEndpoint(target: Target, opts: EndpointOptions, report: ReportBuilder): Promise<RequestCounts> {
  const prober = new Prober(target, opts);
  try {
    await run(prober, target, opts, report);
  } catch (err) {
    if (!(err instanceof CapReached)) throw err;
    report.add({ rule: 'WX0-SCAN-INCOMPLETE', level: 'warning', message: `the scan stopped at its cap of ${opts.cap} requests; later probes did not run`, evidence: [] });
  }
  return { http: prober.http, tls: prober.tls, cap: opts.cap, capped: prober.capped };
}

async function run(prober: Prober, target: Target, opts: EndpointOptions, report: ReportBuilder): Promise<void> {
  if (target.scheme === 'https') {
    await probeTls(prober, report, { privateRoots: opts.privateRoots, caFile: opts.caFile, now: opts.now });
  } else {
    report.add({ rule: 'WX1-CHAIN', level: 'error', message: 'no TLS, so no certificate at all: WeChat clients refuse to connect', evidence: [], url: prober.url('/') });
    report.add({ rule: 'WX2-NO-TLS', level: 'error', message: `${prober.url('/')} speaks plain HTTP: no TLS at all`, evidence: [], url: prober.url('/') });
  }

  let hstsJudged = false;
  for (const path of opts.paths) {
    const url = prober.url(path);
    const baseline = await prober.send({ method: 'GET', path });
    if (failed(baseline)) {
      report.add({ rule: 'WX4-SENSITIVE-DATA', level: 'note', message: `GET ${url} failed: ${baseline.error}`, evidence: [], url });
      continue;
    }
    judgePayload(report, url, baseline);
    if (target.scheme === 'https' && !hstsJudged) {
      judgeHsts(report, url, baseline);
      hstsJudged = true;
    }
    await probeCors(prober, report, path);
    await probeDifferentials(prober, report, path, baseline);
  }

  if (opts.callback) await probeCallback(prober, report, opts.callback, opts.now);
  else report.add({ rule: 'WX5-CALLBACK-UNVERIFIED', level: 'note', message: 'no --callback path given: callbacks not probed', evidence: [] });

  if (target.scheme === 'https') await probePlainHttp(prober, report, opts.paths[0]!);
  await probeBurst(prober, report, opts.paths[0]!, opts.burst);
}
