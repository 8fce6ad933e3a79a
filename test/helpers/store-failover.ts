// A real gateway whose Redis store loses its master mid-load: requests keep coming while the
// master is SIGKILLed and a replica takes over, and every answer is kept, so a test can check
// what the gateway answered in the window, that it came back without a restart, and how far
// the limit held. Shared by the Redis Cluster and the Sentinel tests.
import { Agent, request } from 'undici';
import { startTestGateway, type TestGateway } from './gateway.js';
import { startUpstream, type TestUpstream } from './upstream.js';
import { eventually } from './wait.js';

export interface Answer {
  status: number;
  reason: string | undefined;
  /** When it was sent relative to the failover: before the kill, during, or after recovery. */
  phase: 'before' | 'during' | 'after';
}

export interface FailoverRun {
  answers: Answer[];
  /** From the kill to the first answer from the store again. */
  windowMs: number;
  count(status: number, phase?: Answer['phase']): number;
}

export interface FailoverGateway {
  readonly gateway: TestGateway;
  /** GET one path through the gateway. */
  send(path: string): Promise<{ status: number; reason: string | undefined }>;
  /**
   * `before` requests to `path` first (parallel 4), then load (parallel `parallel`) while
   * `kill()` and `failedOver()` run, then load until `enough` says the run has seen enough
   * after the failover.
   */
  run(opts: {
    path: string;
    before: number;
    parallel: number;
    kill: () => Promise<void>;
    failedOver: () => Promise<void>;
    enough: (after: Answer[]) => boolean;
  }): Promise<FailoverRun>;
  close(): Promise<void>;
}

/**
 * A gateway with one route `/api/` limited per client address to `limit` per minute, on the
 * store described by `storeYaml` (the lines under `store:`).
 */
export async function startFailoverGateway(storeYaml: string, limit: number, env?: Record<string, string>): Promise<FailoverGateway> {
  const upstream: TestUpstream = await startUpstream();
  const gateway = await startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
store:
${storeYaml}
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    rate_limit: { key: ip, limit: ${limit}, window: 60s }
`,
    env === undefined ? {} : { env },
  );
  const agent = new Agent({ connect: { ca: gateway.ca, servername: 'localhost' }, connections: 16, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const send = async (path: string): Promise<{ status: number; reason: string | undefined }> => {
    const res = await request(`https://127.0.0.1:${gateway.port}${path}`, { dispatcher: agent });
    const text = await res.body.text();
    let reason: string | undefined;
    if (res.statusCode !== 200) reason = (JSON.parse(text) as { error: { reason: string } }).error.reason;
    return { status: res.statusCode, reason };
  };
  return {
    gateway,
    send,
    async run({ path, before, parallel, kill, failedOver, enough }) {
      const answers: Answer[] = [];
      let phase: Answer['phase'] = 'before';
      const one = async (): Promise<void> => {
        const at = phase;
        answers.push({ ...(await send(path)), phase: at });
      };
      let sent = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (sent < before) {
            sent++;
            await one();
          }
        }),
      );
      let stop = false;
      phase = 'during';
      const load = Promise.all(
        Array.from({ length: parallel }, async () => {
          while (!stop) await one();
        }),
      );
      let killedAt = 0;
      let recoveredAt = 0;
      try {
        killedAt = performance.now();
        await kill();
        await failedOver();
        // The gateway's client follows the failover by itself: the first answer from the
        // store again (a 200 or a 429, not a 503) ends the window.
        await eventually(async () => {
          const last = answers.at(-1);
          return last !== undefined && last.phase === 'during' && last.status !== 503 ? true : undefined;
        }, 'the gateway to answer from the store again after the failover', { timeoutMs: 20_000 });
        recoveredAt = performance.now();
        phase = 'after';
        await eventually(async () => (enough(answers.filter((a) => a.phase === 'after')) ? true : undefined), 'enough answers after the failover', {
          timeoutMs: 20_000,
        });
      } finally {
        stop = true;
        await load;
      }
      return {
        answers,
        windowMs: Math.round(recoveredAt - killedAt),
        count: (status, at) => answers.filter((a) => a.status === status && (at === undefined || a.phase === at)).length,
      };
    },
    async close() {
      await agent.close();
      await gateway.close();
      await upstream.close();
    },
  };
}
