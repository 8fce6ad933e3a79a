// Requests written byte for byte over real TLS, for spellings a client library would normalise
// or refuse (header names with `_`, `;` in paths, a Host with a trailing dot, TRACE, duplicated
// headers), and a small parser of the answer that keeps every header line as sent.
import { connect as tcpConnect } from 'node:net';
import { connect } from 'node:tls';

export interface WireRequest {
  method?: string;
  /** The request target exactly as written on the request line. */
  target: string;
  /** Header lines in order, duplicates allowed; `Host: localhost` and `Connection: close` unless given. */
  headers?: [string, string][];
  body?: string;
  /** Local address to connect from: 127.0.0.2 is the trusted proxy of the differential policies. */
  from?: string;
  /**
   * SNI to send instead of `localhost`, for Host tests that keep SNI and Host in agreement. The
   * chain is still verified against the test root; only the name check is left out, as the test
   * chain names localhost alone.
   */
  servername?: string;
}

export interface WireAnswer {
  status: number;
  /** Header lines as received, names lower-cased. */
  lines: [string, string][];
  /** The last value of a header, or undefined. */
  header(name: string): string | undefined;
  /** Every value of a header. */
  all(name: string): string[];
  body: Buffer;
  text: string;
  json<T = unknown>(): T;
}

/** Decodes a chunked body; the gateway streams some answers. */
function unchunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(data.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

export function parseAnswer(raw: Buffer, method: string): WireAnswer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete answer: ${JSON.stringify(raw.toString('latin1'))}`);
  const [statusLine, ...rest] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const lines = rest.map((l): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()];
  });
  const all = (name: string) => lines.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);
  let body = raw.subarray(end + 4);
  if (method === 'HEAD' || status === 204 || status === 304) body = Buffer.alloc(0);
  else if (all('transfer-encoding').some((v) => /chunked/i.test(v))) body = unchunk(body);
  else {
    const length = all('content-length')[0];
    if (length !== undefined) body = body.subarray(0, Number(length));
  }
  const text = body.toString('utf8');
  return { status, lines, header: (n) => all(n).at(-1), all, body, text, json: () => JSON.parse(text) };
}

/**
 * Sends one request on its own connection and reads the answer until the server closes it: over
 * TLS trusting `ca` (the gateway), or plain with `ca` null (a backend asked directly, to show what
 * it does with a spelling when nothing stands in front of it).
 */
export function wire(port: number, ca: Buffer | null, req: WireRequest): Promise<WireAnswer> {
  const method = req.method ?? 'GET';
  const headers = [...(req.headers ?? [])];
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  if (!has('host')) headers.unshift(['Host', 'localhost']);
  if (!has('connection')) headers.push(['Connection', 'close']);
  if (req.body !== undefined && !has('content-length')) headers.push(['Content-Length', String(Buffer.byteLength(req.body))]);
  const head = `${method} ${req.target} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return new Promise((resolve, reject) => {
    const sni = req.servername === undefined ? {} : { servername: req.servername, checkServerIdentity: () => undefined };
    const tcp = tcpConnect({ host: '127.0.0.1', port, localAddress: req.from ?? '127.0.0.1' });
    const send = (): void => {
      socket.write(head);
      if (req.body !== undefined) socket.write(req.body);
    };
    const socket = ca === null ? tcp.once('connect', send) : connect({ socket: tcp, servername: 'localhost', ...sni, ca }, send);
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${method} ${req.target}`)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      try {
        resolve(parseAnswer(Buffer.concat(chunks), method));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}
