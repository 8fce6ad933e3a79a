// Checks across and beyond single values: listeners that clash, an admin port left open,
// `https: off` without the plain listener and trusted proxy it relies on,
// timeouts Node cannot honour or that can never fire, unusable upstream URLs, and files the
// policy names but wxgw could not read at start, HSTS that browsers would refuse to preload,
// and access rules (access.ts). Values the schema already rejected are
// skipped by the caller, so this code only has to be careful about types, not repeat messages.

import { availableParallelism } from 'node:os';
import { isLoopback, listenersClash, parseCidr, parseListen } from './addresses.js';
import { CLIENT_CLAIMS, GATEWAY_FORWARDING, foldHeaderName } from '../net/header-names.js';
import { checkAccess } from './access.js';
import { checkAlerts } from './alerts.js';
import { checkFeatures } from './features.js';
import { checkHeaderRules } from './header-rules.js';
import { checkReportMode } from './report-mode.js';
import { checkRequestId } from './request-id-checks.js';
import { resolveFrom, unreadable } from './files.js';
import { isRecord, type KeyPath } from './key-path.js';
import { show, type Reporter } from './report.js';
import { checkRoutes } from './routes.js';
import { checkUpstream } from './upstream-checks.js';
import { checkTracing } from './tracing-checks.js';
import { closest } from './suggest.js';
import { DEFAULTS } from './build.js';
import { parseSeconds } from './units.js';
import { checkDuration, checkSize } from './value-checks.js';
import { checkWebSockets } from './websocket-checks.js';
import type { ListenAddress } from '../types/policy.js';

const LISTENERS = ['https', 'http', 'admin', 'egress'] as const;

/** hstspreload.org's shortest accepted max_age: one year, in seconds. */
const PRELOAD_MIN_AGE_S = 31_536_000;

function describeMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

class Checker {
  /** File checks run together once the walk is done. */
  private readonly files: { at: KeyPath; file: string; what: string; hint?: string }[] = [];

  constructor(
    private readonly report: Reporter,
    private readonly baseDir: string,
  ) {}

  duration(value: unknown, at: KeyPath, timer: boolean): number | undefined {
    return checkDuration(this.report, value, at, timer);
  }

  server(server: unknown): void {
    if (!isRecord(server)) {
      this.limits(undefined);
      return;
    }
    const listening: { name: string; address: ListenAddress }[] = [];
    for (const name of LISTENERS) {
      const section = server[name];
      if (!isRecord(section) || typeof section.listen !== 'string') continue;
      const at = ['server', name, 'listen'];
      const parsed = parseListen(section.listen);
      if (!parsed.ok) {
        this.report.error(at, `${show(section.listen)} ${parsed.why}`);
        continue;
      }
      const clash = listening.find((other) => listenersClash(other.address, parsed.value));
      if (clash) {
        this.report.error(
          at,
          `port ${parsed.value.port} is already taken by server.${clash.name}.listen (line ${this.report.line(['server', clash.name, 'listen'])}) on an overlapping address`,
        );
      }
      listening.push({ name, address: parsed.value });
      if (name === 'egress' && !isLoopback(parsed.value.host)) {
        this.report.warn(
          at,
          `the WeChat API egress answers on ${show(section.listen)}: anyone who reaches it calls WeChat with this account's access_token (and reads it from /cgi-bin/token); listen on 127.0.0.1, ::1 or a pod-local address a network policy keeps private`,
        );
      }
      if (name === 'admin' && !isLoopback(parsed.value.host)) {
        this.report.warn(
          at,
          `admin endpoints exposed: /healthz, /readyz, /metrics and /config (the policy in force, secrets redacted) answer on ${show(section.listen)}; listen on 127.0.0.1 or ::1 unless a firewall keeps this port private`,
        );
      }
    }
    if (server.https === 'off') this.httpsOff(server);
    // h2c is not offered: the load balancer speaks HTTP/1.1 to the plain listener.
    if (server.https === 'off' && server.http2 === true) {
      this.report.warn(['server', 'http2'], 'has no effect with server.https off: the plain-HTTP listener speaks HTTP/1.1 only (the load balancer in front can speak h2 to clients)');
    }
    if (Array.isArray(server.trusted_proxies)) {
      server.trusted_proxies.forEach((item: unknown, i) => {
        if (typeof item !== 'string') return;
        const parsed = parseCidr(item);
        if (!parsed.ok) this.report.error(['server', 'trusted_proxies', i], `${show(item)} ${parsed.why}`);
      });
    }
    this.limits(server.limits);
    this.duration(server.shutdown_timeout, ['server', 'shutdown_timeout'], true);
    this.trustedHeaders(server);
    this.duration(server.drain_delay, ['server', 'drain_delay'], true);
    // More processes than cores only adds context switches and memory; a warning, since the
    // machine that validates may not be the one that runs.
    const cores = availableParallelism();
    if (typeof server.workers === 'number' && server.workers > cores) {
      this.report.warn(['server', 'workers'], `${server.workers} workers on a machine with ${cores} cores: they compete for CPU and each costs its own memory; \`auto\` runs one per core`);
    }
  }

  /** Each entry must be a client claim the gateway removes, believed only from a trusted proxy. */
  private trustedHeaders(server: Record<string, unknown>): void {
    const names = server.trusted_headers;
    if (!Array.isArray(names) || names.length === 0) return;
    const proxies = server.trusted_proxies;
    if (!Array.isArray(proxies) || proxies.length === 0) {
      this.report.error(['server', 'trusted_headers'], 'is only believed from server.trusted_proxies, and there are none: list the proxy that sets these headers, or remove trusted_headers', {
        anchor: 'key',
      });
    }
    names.forEach((name: unknown, i) => {
      if (typeof name !== 'string') return;
      const at = ['server', 'trusted_headers', i];
      const lower = name.toLowerCase();
      if (lower !== foldHeaderName(lower)) {
        this.report.error(at, `${show(name)} is not the \`-\` spelling: only \`${foldHeaderName(lower)}\` exactly is ever believed, since a backend reads every spelling alike`);
      } else if (GATEWAY_FORWARDING.includes(lower)) {
        this.report.error(at, `${show(name)} is the gateway's own: always set by wxgw, which builds on a trusted proxy's X-Forwarded-For and X-Request-Id already`);
      } else if (!CLIENT_CLAIMS.includes(lower)) {
        const near = closest(lower, CLIENT_CLAIMS);
        this.report.error(
          at,
          `${show(name)} is not a client claim wxgw removes: it reaches the upstream anyway${near ? `; did you mean \`${near}\`?` : ''}`,
        );
      }
    });
  }

  /** With TLS ended at a load balancer, the plain listener serves and the balancer must be trusted. */
  private httpsOff(server: Record<string, unknown>): void {
    const at = ['server', 'https'];
    const http = server.http;
    if (!isRecord(http)) {
      this.report.error(
        at,
        '`off` needs an http listener, e.g. `http: { listen: "0.0.0.0:8080", mode: redirect }`, to serve what the load balancer forwards; without one nothing could ever be proxied',
      );
    } else if (http.mode === 'off') {
      this.report.error(
        at,
        `\`off\` needs the http listener in mode redirect (line ${this.report.line(['server', 'http', 'mode'])} turns it off); without it nothing could ever be proxied`,
      );
    }
    const proxies = server.trusted_proxies;
    if (!Array.isArray(proxies) || proxies.length === 0) {
      this.report.error(
        at,
        '`off` needs the TLS-terminating load balancer in trusted_proxies: only its `X-Forwarded-Proto: https` lets a request through, so without one every request would be redirected',
      );
    }
  }

  private limits(limits: unknown): void {
    const at = ['server', 'limits'];
    const given = isRecord(limits) ? limits : {};
    checkSize(this.report, given.body, [...at, 'body']);
    this.duration(given.handshake_timeout ?? DEFAULTS.handshake_timeout, [...at, 'handshake_timeout'], true);
    this.duration(given.send_timeout ?? DEFAULTS.send_timeout, [...at, 'send_timeout'], true);
    const headers = this.duration(given.headers_timeout ?? DEFAULTS.headers_timeout, [...at, 'headers_timeout'], true);
    const request = this.duration(given.request_timeout ?? DEFAULTS.request_timeout, [...at, 'request_timeout'], true);
    if (headers !== undefined && request !== undefined && headers > request) {
      const byDefault = (key: string): string => (given[key] === undefined ? ', the default' : '');
      this.report.error(
        [...at, given.headers_timeout === undefined ? 'request_timeout' : 'headers_timeout'],
        `headers_timeout (${describeMs(headers)}${byDefault('headers_timeout')}) is longer than request_timeout (${describeMs(request)}${byDefault('request_timeout')}); the request would end before its headers could arrive`,
      );
    }
  }

  tls(tls: unknown): void {
    if (!isRecord(tls)) return;
    this.duration(tls.expiry_warning, ['tls', 'expiry_warning'], false);
    this.hsts(tls.hsts);
    if (typeof tls.roots === 'string' && tls.roots !== 'system') {
      const hint = tls.roots.toLowerCase() === 'system' ? ' (write `system`, in lower case, for the system roots)' : '';
      this.files.push({ at: ['tls', 'roots'], file: tls.roots, what: 'CA bundle', hint });
    }
    if (!Array.isArray(tls.certificates)) return;
    tls.certificates.forEach((entry: unknown, i) => {
      if (!isRecord(entry)) return;
      for (const [field, what] of [
        ['cert', 'certificate file'],
        ['key', 'key file'],
      ] as const) {
        const file = entry[field];
        if (typeof file === 'string' && file !== '') this.files.push({ at: ['tls', 'certificates', i, field], file, what });
      }
    });
  }

  private hsts(hsts: unknown): void {
    if (!isRecord(hsts) || typeof hsts.max_age !== 'string') return;
    const at = ['tls', 'hsts'];
    const age = parseSeconds(hsts.max_age);
    if (!age.ok) {
      this.report.error([...at, 'max_age'], `${show(hsts.max_age)} ${age.why}`);
      return;
    }
    if (age.value === 0) {
      this.report.warn(
        [...at, 'max_age'],
        `${show(hsts.max_age)} tells browsers to forget this host's HSTS and accept plain http again; use it only to undo HSTS, then remove \`hsts\``,
      );
    }
    if (hsts.preload !== true) return;
    const missing = [
      ...(age.value < PRELOAD_MIN_AGE_S ? [`max_age of at least 365d (found ${show(hsts.max_age)})`] : []),
      ...(hsts.include_subdomains !== true ? ['`include_subdomains: true`'] : []),
    ];
    if (missing.length > 0) {
      this.report.error(
        [...at, 'preload'],
        `\`preload: true\` needs ${missing.join(' and ')}: hstspreload.org refuses anything less, and a preloaded host stays https-only in browsers for months even after preload is removed`,
      );
    }
  }

  upstreams(upstreams: unknown): void {
    if (!isRecord(upstreams)) return;
    for (const [name, upstream] of Object.entries(upstreams)) {
      if (!isRecord(upstream)) continue;
      checkUpstream(upstream, ['upstreams', name], this.report, (at, file, what) => this.files.push({ at, file, what }));
    }
  }

  routes(routes: unknown, upstreamNames: string[] | undefined, context: { server: unknown; defaults: unknown }): void {
    const paths = isRecord(context.server) && isRecord(context.server.paths) ? context.server.paths : {};
    const semicolons = paths.semicolons === 'strip' || paths.semicolons === 'keep' ? paths.semicolons : DEFAULTS.semicolons;
    checkRoutes(routes, upstreamNames, this.report, { semicolons, defaults: isRecord(context.defaults) ? context.defaults : {} });
    checkWebSockets(routes, isRecord(context.defaults) ? context.defaults : {}, this.report);
    if (!Array.isArray(routes)) return;
    routes.forEach((route: unknown, i) => {
      if (isRecord(route)) this.duration(route.timeout, ['routes', i, 'timeout'], true);
    });
  }

  async readableFiles(): Promise<void> {
    const results = await Promise.all(this.files.map(async (f) => unreadable(resolveFrom(this.baseDir, f.file))));
    this.files.forEach((f, i) => {
      const why = results[i];
      if (why) this.report.error(f.at, `cannot read ${f.what} ${resolveFrom(this.baseDir, f.file)}: ${why}${f.hint ?? ''}`);
    });
  }
}

export async function checkSemantics(data: unknown, baseDir: string, report: Reporter): Promise<void> {
  if (!isRecord(data)) return;
  const checker = new Checker(report, baseDir);
  checker.server(data.server);
  checker.tls(data.tls);
  checker.upstreams(data.upstreams);
  checker.routes(data.routes, isRecord(data.upstreams) ? Object.keys(data.upstreams) : undefined, { server: data.server, defaults: data.defaults });
  checkAccess(data, report);
  checkHeaderRules(data, report, [DEFAULTS.upstream_header, DEFAULTS.unionid_header]);
  checkReportMode(data, report);
  if (isRecord(data.server)) {
    const identity = isRecord(data.identity) ? [data.identity.upstream_header, data.identity.unionid_header].filter((h): h is string => typeof h === 'string') : [];
    checkRequestId(report, data.server, [DEFAULTS.upstream_header, DEFAULTS.unionid_header, ...identity.map((h) => h.toLowerCase())]);
  }
  checkTracing(data, report);
  await Promise.all([checker.readableFiles(), checkFeatures(data, baseDir, report), checkAlerts(data, baseDir, report)]);
}
