// For the delivery: async tests: a backend that records what it accepted (each message once it
// answered 2xx) and can be down or refuse chosen keys, pushes with their MsgId and user, and the
// built CLI run as a child process.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './process.js';
import { startUpstream, type TestUpstream } from './upstream.js';
import { waitUntil } from './wait.js';

export interface Delivered {
  key: string;
  user: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export class DeliveringBackend {
  down = false;
  readonly failKeys = new Set<string>();
  delivered: Delivered[] = [];
  /** The idempotency key of every attempt, answered or refused. */
  attempts: string[] = [];
  refused = 0;
  private readonly wake = new Set<() => void>();

  private constructor(readonly upstream: TestUpstream) {}

  static async start(): Promise<DeliveringBackend> {
    let self: DeliveringBackend | undefined;
    const upstream = await startUpstream((req, res, body) => {
      const key = String(req.headers['idempotency-key']);
      self!.attempts.push(key);
      if (self!.down || self!.failKeys.has(key)) {
        self!.refused++;
        res.writeHead(503).end();
      } else {
        const text = body.toString('utf8');
        self!.delivered.push({ key, user: /<FromUserName><!\[CDATA\[([^\]]+)\]\]>/.exec(text)?.[1], headers: req.headers, body: text });
        res.end('ok');
      }
      for (const w of self!.wake) w();
    });
    self = new DeliveringBackend(upstream);
    return self;
  }

  /** Resolves once at least `n` messages were delivered, with what was. */
  until(n: number): Promise<Delivered[]> {
    return waitUntil(() => (this.delivered.length >= n ? this.delivered : undefined), `${n} deliveries`, {
      wake: this.wake,
      timeoutMs: 30_000,
      describe: () => JSON.stringify({ delivered: this.delivered.map((d) => d.key), attempts: this.attempts.length }),
    });
  }

  reset(): void {
    this.delivered = [];
    this.attempts = [];
    this.refused = 0;
    this.down = false;
    this.failKeys.clear();
  }

  close(): Promise<void> {
    return this.upstream.close();
  }
}

/** A text message from `user` with MsgId `id`. */
export function pushXml(user: string, id: string): string {
  return `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[${user}]]></FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello ${id}]]></Content><MsgId>${id}</MsgId></xml>`;
}

/** An event push: no MsgId. */
export function eventXml(user: string, createTime: number, event: string): string {
  return `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[${user}]]></FromUserName><CreateTime>${createTime}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${event}]]></Event></xml>`;
}

/** Runs the built `wxgw` with `args` to its end. */
export function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin/wxgw.js'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', (status) => resolve({ status, stdout, stderr }));
  });
}
