// `wxgw scan`: arguments in, one report out, and the exit code: 0 nothing found, 1 findings,
// 2 could not scan or a usage error (one line on stderr, nothing on stdout).
//
//   runScan(args, io) -> exit code

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { shownPath } from '../shown-path.js';
import { lintPolicy } from './policy-lint.js';
import { HARD_CAP, Unreachable, type Target } from './prober.js';
import { ReportBuilder, type ScanReport } from './report.js';
import { renderHtml } from './render-html.js';
import { renderJson } from './render-json.js';
import { renderSarif } from './render-sarif.js';
import { renderText } from './render-text.js';
import { scanEndpoint } from './scan.js';
import { passed } from './summary.js';

const SCAN_USAGE = `usage: wxgw scan [https://host[:port]] [--path /api/user ...] [--callback /wx/callback] [--policy FILE]
                 [--ca FILE] [--http-port 80] [--burst 30] [--rate 10] [--max-requests ${HARD_CAP}]
                 [--format text|json|sarif|html]`;

const MAX_BURST = 100;
const MAX_PATHS = 5;
const FORMATS = ['text', 'json', 'sarif', 'html'] as const;
type Format = (typeof FORMATS)[number];

export interface ScanIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
}

class UsageError extends Error {}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`--${name} ${text}: expected a whole number from ${min} to ${max}`);
  return n;
}

interface Parsed {
  target?: Target;
  shownTarget?: string;
  policy?: string;
  format: Format;
  paths: string[];
  callback?: string;
  ca?: string;
  burst: number;
  rate: number;
  cap: number;
}

function parse(args: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        path: { type: 'string', multiple: true },
        callback: { type: 'string' },
        policy: { type: 'string' },
        ca: { type: 'string' },
        'http-port': { type: 'string' },
        burst: { type: 'string' },
        rate: { type: 'string' },
        'max-requests': { type: 'string' },
        format: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/\. To specify .*$/, ''));
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new UsageError(`one URL only, got ${positionals.length}: ${positionals.join(' ')}`);
  const format = (values.format ?? 'text') as Format;
  if (!FORMATS.includes(format)) throw new UsageError(`--format ${values.format}: expected one of ${FORMATS.join(', ')}`);
  if (positionals.length === 0 && !values.policy) throw new UsageError('give a URL to scan, --policy FILE, or both');
  for (const p of [...(values.path ?? []), ...(values.callback ? [values.callback] : [])]) {
    if (!p.startsWith('/')) throw new UsageError(`${p}: a path starts with /`);
    if (/[\s#]/.test(p)) throw new UsageError(`${p}: a path has no spaces or #`);
  }
  if ((values.path?.length ?? 0) > MAX_PATHS) throw new UsageError(`at most ${MAX_PATHS} --path options`);
  const out: Parsed = {
    format,
    policy: values.policy,
    callback: values.callback,
    ca: values.ca,
    paths: values.path ?? [],
    burst: integer('burst', values.burst, 30, 1, MAX_BURST),
    rate: integer('rate', values.rate, 10, 1, 100),
    cap: integer('max-requests', values['max-requests'], HARD_CAP, 1, HARD_CAP),
  };
  const text = positionals[0];
  if (text !== undefined) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new UsageError(`${text}: not a URL; write https://host[:port]`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${text}: only https:// (or http:// for a bare backend) can be scanned`);
    if (url.username || url.password) throw new UsageError(`${text}: no credentials in the URL`);
    const scheme = url.protocol === 'https:' ? 'https' : 'http';
    const port = url.port ? Number(url.port) : scheme === 'https' ? 443 : 80;
    const httpPort = scheme === 'http' ? port : integer('http-port', values['http-port'], 80, 1, 65535);
    out.target = { host: url.hostname.replace(/^\[|\]$/g, ''), scheme, port, httpPort };
    out.shownTarget = `${scheme}://${url.host}`;
    if (out.paths.length === 0) out.paths = [url.pathname + url.search];
  }
  return out;
}

function readRoots(file: string): X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--ca ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new UsageError(`--ca ${file}: no PEM certificate in it`);
  try {
    return blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw new UsageError(`--ca ${file}: ${(err as Error).message}`);
  }
}

const RENDER: Record<Format, (r: ScanReport, colour: boolean) => string> = {
  text: renderText,
  json: renderJson,
  sarif: renderSarif,
  html: renderHtml,
};

export async function runScan(args: string[], io: ScanIo): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`${SCAN_USAGE}\n`);
    return 0;
  }
  const report = new ReportBuilder();
  let result: ScanReport;
  let format: Format;
  try {
    const p = parse(args);
    format = p.format;
    const roots = p.ca ? readRoots(p.ca) : [];
    result = { findings: report.findings };
    if (p.policy) {
      result.policy = shownPath(p.policy);
      await lintPolicy(p.policy, report);
    }
    if (p.target) {
      result.target = p.shownTarget;
      result.requests = await scanEndpoint(
        p.target,
        { paths: p.paths, callback: p.callback, burst: p.burst, rate: p.rate, cap: p.cap, timeoutMs: 5000, privateRoots: roots, caFile: p.ca, now: new Date() },
        report,
      );
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`wxgw scan: ${err.message} (wxgw scan --help)\n`);
      return 2;
    }
    if (err instanceof Unreachable) {
      io.stderr.write(`wxgw scan: could not scan: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const colour = io.stdout.isTTY === true && !io.env.NO_COLOR;
  io.stdout.write(RENDER[format](result, colour));
  // Machine formats keep stdout to the document; the count still reaches the person running it.
  if (result.requests && format !== 'text') {
    io.stderr.write(`wxgw scan: ${result.requests.http + result.requests.tls} requests sent to ${result.target}\n`);
  }
  return passed(result) ? 0 : 1;
}
