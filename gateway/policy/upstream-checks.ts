// Checks of one `upstreams` entry beyond its schema: exactly one of url and targets, targets that
// differ only in host and port, TLS keys only where TLS is spoken, a client certificate with its
// key, timers Node can honour, and the files it names (read by the caller with the others).
import { parseUpstreamUrl, redactUrl } from './addresses.js';
import { isRecord, type KeyPath } from './key-path.js';
import { show, type Reporter } from './report.js';
import { checkDuration } from './value-checks.js';

const TLS_KEYS = ['ca', 'pin', 'client_cert', 'client_key', 'servername'] as const;
const FILES = [
  ['ca', 'upstream CA bundle'],
  ['client_cert', 'upstream client certificate'],
  ['client_key', 'upstream client key'],
] as const;

/** `file`: called for every file the entry names, to be checked for readability. */
export function checkUpstream(upstream: Record<string, unknown>, at: KeyPath, report: Reporter, file: (at: KeyPath, path: string, what: string) => void): void {
  const urls = upstreamUrls(upstream, at, report);
  for (const key of ['timeout', 'connect_timeout', 'queue_timeout'] as const) checkDuration(report, upstream[key], [...at, key], true);
  if (isRecord(upstream.eject)) {
    const cooldown = checkDuration(report, upstream.eject.cooldown, [...at, 'eject', 'cooldown'], true);
    const max = checkDuration(report, upstream.eject.max_cooldown, [...at, 'eject', 'max_cooldown'], true);
    if (cooldown !== undefined && max !== undefined && max < cooldown) {
      report.error([...at, 'eject', 'max_cooldown'], `${show(upstream.eject.max_cooldown)} is shorter than cooldown ${show(upstream.eject.cooldown)}; set them equal for a fixed cool-down`);
    }
  }
  if (isRecord(upstream.health)) {
    const interval = checkDuration(report, upstream.health.interval, [...at, 'health', 'interval'], true);
    const timeout = checkDuration(report, upstream.health.timeout, [...at, 'health', 'timeout'], true);
    if (interval !== undefined && timeout !== undefined && timeout >= interval) {
      report.error([...at, 'health', 'timeout'], `${show(upstream.health.timeout)} is not shorter than interval ${show(upstream.health.interval)}: checks of one target would overlap`);
    }
    const path = upstream.health.path;
    if (typeof path === 'string' && path.includes('#')) report.error([...at, 'health', 'path'], `${show(path)} has a fragment, which is never sent to a server`);
  }
  const https = urls.length > 0 && urls.every((u) => u.protocol === 'https:');
  if (urls.length > 0 && !https) {
    for (const key of TLS_KEYS) {
      if (upstream[key] !== undefined) report.error([...at, key], `\`${key}\` applies only to https:// upstreams; this one is http://`);
    }
    return;
  }
  const cert = typeof upstream.client_cert === 'string';
  const key = typeof upstream.client_key === 'string';
  if (cert && !key) report.error([...at, 'client_cert'], '`client_cert` needs `client_key`, the private key it was issued for');
  if (key && !cert) report.error([...at, 'client_key'], '`client_key` needs `client_cert`, the certificate it belongs to');
  for (const [field, what] of FILES) {
    const value = upstream[field];
    if (typeof value === 'string' && value !== '') file([...at, field], value, what);
  }
}

/** The entry's URLs when they parse, each error reported at its key. */
function upstreamUrls(upstream: Record<string, unknown>, at: KeyPath, report: Reporter): URL[] {
  const hasUrl = upstream.url !== undefined;
  const hasTargets = upstream.targets !== undefined;
  if (hasUrl && hasTargets) {
    report.error([...at, 'targets'], 'give either `url` (one backend) or `targets` (several), not both');
    return [];
  }
  if (!hasUrl && !hasTargets) {
    report.error(at, 'needs `url` (one backend) or `targets` (several instances of it)', { anchor: 'key', missing: [[...at, 'url'], [...at, 'targets']] });
    return [];
  }
  const given: [KeyPath, unknown][] = hasUrl
    ? [[[...at, 'url'], upstream.url]]
    : Array.isArray(upstream.targets)
      ? upstream.targets.map((t, i): [KeyPath, unknown] => [[...at, 'targets', i], t])
      : [];
  const urls: URL[] = [];
  const seen = new Map<string, number>();
  for (const [where, text] of given) {
    if (typeof text !== 'string') continue;
    const parsed = parseUpstreamUrl(text);
    if (!parsed.ok) {
      report.error(where, `${show(redactUrl(text))} ${parsed.why}`);
      continue;
    }
    const url = parsed.value;
    const first = urls[0];
    if (first && url.protocol !== first.protocol) {
      report.error(where, `${show(redactUrl(text))} is ${url.protocol}// but the first target is ${first.protocol}//; every target of one upstream speaks the same`);
    } else if (first && basePath(url) !== basePath(first)) {
      report.error(where, `${show(redactUrl(text))} has base path ${show(basePath(url) || '/')} but the first target has ${show(basePath(first) || '/')}; targets differ only in host and port`);
    } else if (seen.has(url.origin)) {
      report.error(where, `${show(url.origin)} is already target ${seen.get(url.origin)}`);
    }
    seen.set(url.origin, urls.length);
    urls.push(url);
  }
  return urls;
}

function basePath(url: URL): string {
  return url.pathname.replace(/\/+$/, '');
}
