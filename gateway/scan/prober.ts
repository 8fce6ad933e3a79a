// The scanner's only way out: every request and TLS handshake goes through one Prober, which
// counts it against a hard cap, paces it to --rate, and can reach nothing but the target host
// on its HTTPS port and its plain-HTTP port. Redirects are never followed; a Location is only
// read. Probes ask for a path and headers, never for a host, so no answer can steer them away.

import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';

/** No scan sends more than this many requests and handshakes together, whatever it is asked. */
export const HARD_CAP = 300;

/** Bodies are read up to this size; the rest is cut (a scan needs the first JSON answer only). */
const BODY_LIMIT = 1024 * 1024;

export interface Target {
  host: string;
  /** `https` for a TLS endpoint, `http` for a bare backend. */
  scheme: 'https' | 'http';
  port: number;
  /** The plain-HTTP port probed for redirects (with an http target: the target's port). */
  httpPort: number;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface Sent {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** `http` sends to the plain-HTTP port; default: the target's own scheme and port. */
  plain?: boolean;
}

export class CapReached extends Error {
  constructor(cap: number) {
    super(`request cap of ${cap} reached`);
  }
}

/** The first contact found nobody there: nothing to report on (exit 2, not a list of failures). */
export class Unreachable extends Error {}

const UNREACHABLE = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)$/;

export interface ProberOptions {
  /** Requests per second, both kinds together. */
  rate: number;
  cap: number;
  timeoutMs: number;
  /** Waits between sends; injectable so that tests need no real pacing. */
  sleep?: (ms: number) => Promise<void>;
  clock?: () => number;
}

export class Prober {
  http = 0;
  tls = 0;
  capped = false;
  private next = 0;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;

  constructor(
    readonly target: Target,
    private readonly opts: ProberOptions,
  ) {
    if (opts.cap > HARD_CAP) throw new Error(`cap ${opts.cap} above the hard cap ${HARD_CAP}`);
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.now = opts.clock ?? Date.now;
  }

  get cap(): number {
    return this.opts.cap;
  }

  get sent(): number {
    return this.http + this.tls;
  }

  /** Whether `n` more sends fit under the cap. */
  fits(n: number): boolean {
    return this.sent + n <= this.opts.cap;
  }

  /** The URL a probe's request goes to, for the report. */
  url(path: string, plain = false): string {
    const { scheme, port } = plain ? { scheme: 'http', port: this.target.httpPort } : this.target;
    const host = isIP(this.target.host) === 6 ? `[${this.target.host}]` : this.target.host;
    return `${scheme}://${host}:${port}${path}`;
  }

  private async take(kind: 'http' | 'tls'): Promise<void> {
    if (this.sent >= this.opts.cap) {
      this.capped = true;
      throw new CapReached(this.opts.cap);
    }
    const wait = this.next - this.now();
    if (wait > 0) await this.sleep(wait);
    this.next = Math.max(this.now(), this.next) + 1000 / this.opts.rate;
    this[kind]++;
  }

  /** One request; a network failure is an answer of its own (`error`), never a throw. */
  async send(s: Sent): Promise<Answer | { error: string }> {
    return this.firstContact(await this.sendOnce(s));
  }

  private async sendOnce(s: Sent): Promise<Answer | { error: string }> {
    if (!s.path.startsWith('/')) throw new Error(`probe path must start with /: ${s.path}`);
    await this.take('http');
    const plain = s.plain === true || this.target.scheme === 'http';
    const port = s.plain === true ? this.target.httpPort : this.target.port;
    const headers: Record<string, string> = { 'user-agent': 'wxgw-scan', accept: 'application/json, */*', ...s.headers };
    if (s.body !== undefined) headers['content-length'] = String(Buffer.byteLength(s.body));
    const options = {
      host: this.target.host,
      port,
      method: s.method,
      path: s.path,
      headers,
      agent: false as const,
      timeout: this.opts.timeoutMs,
      // The chain is judged by the TLS probe; here only the answers matter.
      rejectUnauthorized: false,
      ...(isIP(this.target.host) === 0 && { servername: this.target.host }),
    };
    return new Promise((resolve) => {
      const req = (plain ? httpRequest : httpsRequest)(options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < BODY_LIMIT) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).subarray(0, BODY_LIMIT) }));
        res.on('error', (err) => resolve({ error: err.message }));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.opts.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      req.end(s.body);
    });
  }

  /** One TLS handshake to the target's port, closed right after; resolves with the socket's view. */
  async handshake<T>(opts: ConnectionOptions, read: (socket: TLSSocket) => T): Promise<T | { error: string }> {
    return this.firstContact(await this.handshakeOnce(opts, read));
  }

  private firstContact<T>(result: T | { error: string }): T | { error: string } {
    if (this.sent === 1 && failed(result) && UNREACHABLE.test(result.error)) throw new Unreachable(`${this.url('/')}: ${result.error}`);
    return result;
  }

  private async handshakeOnce<T>(opts: ConnectionOptions, read: (socket: TLSSocket) => T): Promise<T | { error: string }> {
    await this.take('tls');
    return new Promise((resolve) => {
      let socket: TLSSocket;
      try {
        socket = connect({
          ...opts,
          host: this.target.host,
          port: this.target.port,
          rejectUnauthorized: false,
          ...(isIP(this.target.host) === 0 && { servername: this.target.host }),
        });
      } catch (err) {
        resolve({ error: (err as Error).message });
        return;
      }
      socket.setTimeout(this.opts.timeoutMs, () => socket.destroy(new Error(`no handshake within ${this.opts.timeoutMs} ms`)));
      socket.once('secureConnect', () => {
        const out = read(socket);
        socket.destroy();
        resolve(out);
      });
      // OpenSSL's messages run over several lines of source locations; its code says enough.
      socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message.split('\n')[0]! }));
    });
  }
}

export function failed<T>(a: T | { error: string }): a is { error: string } {
  return typeof a === 'object' && a !== null && 'error' in a && !('status' in a);
}
