// An upstream of several targets through the real gateway: round robin spreads, least_busy
// prefers the idle target, a target that dies under load is ejected and costs only the requests
// it held, an active health check takes a target out and brings it back, every target down is
// 503 upstream_down, and preserve_host sends the client's Host. Real HTTPS, real upstreams.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

/** A target that says who it is, holds requests when told to, and fails its health check when sick. */
interface Backend {
  up: TestUpstream;
  name: string;
  holding: boolean;
  held: ServerResponse[];
  sick: boolean;
  /** Every request other than health checks, by path. */
  served: string[];
}

async function backend(name: string): Promise<Backend> {
  const b: Backend = { up: undefined!, name, holding: false, held: [], sick: false, served: [] };
  b.up = await startUpstream((req, res) => {
    if (req.url!.endsWith('/health')) {
      res.writeHead(b.sick ? 503 : 200).end();
      return;
    }
    b.served.push(req.url!);
    if (b.holding || req.url!.endsWith('/hold')) {
      b.held.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ who: name, host: req.headers.host }));
  });
  return b;
}

const names = ['rr-a', 'rr-b', 'lb-a', 'lb-b', 'fo-a', 'fo-b', 'hc-a', 'hc-b', 'ph'] as const;
const b = {} as Record<(typeof names)[number], Backend>;
let t: TestGateway;
let deadPorts: number[];

before(async () => {
  for (const n of names) b[n] = await backend(n);
  deadPorts = [await freePort(), await freePort()];
  t = await startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  rr: { targets: ["${b['rr-a'].up.url}", "${b['rr-b'].up.url}"] }
  lb: { targets: ["${b['lb-a'].up.url}", "${b['lb-b'].up.url}"], balance: least_busy }
  fo:
    targets: ["${b['fo-a'].up.url}", "${b['fo-b'].up.url}"]
    eject: { failures: 2, cooldown: 10m }
  hc:
    targets: ["${b['hc-a'].up.url}", "${b['hc-b'].up.url}"]
    # A check times out only far beyond what a loaded test machine needs, so only \`sick\` fails one.
    health: { path: /health, interval: 300ms, timeout: 290ms, healthy: 2, unhealthy: 2 }
  dead:
    targets: ["http://127.0.0.1:${deadPorts[0]}", "http://127.0.0.1:${deadPorts[1]}"]
    eject: { failures: 1, cooldown: 10m }
  half: { targets: ["http://127.0.0.1:${deadPorts[0]}", "${b.ph.up.url}"] }
  ph: { url: "${b.ph.up.url}", preserve_host: true }
  plain: { url: "${b.ph.up.url}" }
routes:
  - { name: rr, match: { path_prefix: /rr/ }, upstream: rr }
  - { name: lb, match: { path_prefix: /lb/ }, upstream: lb }
  - { name: fo, match: { path_prefix: /fo/ }, upstream: fo }
  - { name: hc, match: { path_prefix: /hc/ }, upstream: hc }
  - { name: dead, match: { path_prefix: /dead/ }, upstream: dead }
  - { name: half, match: { path_prefix: /half/ }, upstream: half }
  - { name: ph, match: { path_prefix: /ph/ }, upstream: ph }
  - { name: plain, match: { path_prefix: /plain/ }, upstream: plain }
defaults: { allow: any }
`,
  );
});

after(async () => {
  for (const n of names) for (const res of b[n].held) res.destroy();
  await t.close();
  for (const n of names) await b[n].up.close();
});

const get = (path: string, headers?: Record<string, string>): Promise<ClientResponse> => httpsRequest(t.port, t.ca, { path, ...(headers && { headers }) });
const who = async (path: string): Promise<string> => {
  const res = await get(path);
  assert.equal(res.status, 200, res.text);
  return res.json<{ who: string }>().who;
};

async function metric(line: string): Promise<number | undefined> {
  const text = await t.gw.metrics.registry.metrics();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

test('round robin gives the targets requests in turn', async () => {
  const seen: string[] = [];
  for (let i = 0; i < 10; i++) seen.push(await who('/rr/x'));
  for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `in turn: ${seen.join(' ')}`);
  assert.equal(await metric(`wxgw_upstream_requests_total{upstream="rr",target="${b['rr-a'].up.url}"}`), 5);
  assert.equal(await metric(`wxgw_upstream_requests_total{upstream="rr",target="${b['rr-b'].up.url}"}`), 5);
});

test('least_busy sends every request to the idle target while the other one is busy', async () => {
  const held = get('/lb/hold');
  const busy = await waitUntil(() => (b['lb-a'].held.length > 0 ? b['lb-a'] : b['lb-b'].held.length > 0 ? b['lb-b'] : undefined), 'a target holding the request');
  const idle = busy === b['lb-a'] ? b['lb-b'] : b['lb-a'];
  for (let i = 0; i < 6; i++) assert.equal(await who('/lb/x'), idle.name);
  busy.held.shift()!.writeHead(200, { 'content-type': 'application/json' }).end('{"who":"released"}');
  assert.equal((await held).status, 200);
});

test('a target that dies under load is ejected; only the requests it held fail', async () => {
  const WORKERS = 4;
  const TOTAL = 120;
  const alive = b['fo-a'];
  const dying = b['fo-b'];
  const answers: ClientResponse[] = [];
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < TOTAL) {
      issued++;
      answers.push(await get('/fo/work'));
    }
  };
  const workers = Array.from({ length: WORKERS }, worker);
  await waitUntil(() => (answers.length >= 20 || undefined), 'some answers from both targets');
  dying.holding = true;
  // Each worker's next request in turn reaches the dying target and is held there: then no
  // request is anywhere else, and none can be on its way to it when it dies.
  await waitUntil(() => (dying.held.length === WORKERS || undefined), 'every worker held by the dying target');
  const killed = answers.length;
  dying.up.server.close();
  dying.up.server.closeAllConnections();
  await Promise.all(workers);

  assert.equal(answers.length, TOTAL);
  const failed = answers.filter((a) => a.status !== 200);
  // The requests the target held when it died had reached it: they are not retried (the upstream
  // may have acted on them). Those are the only failures.
  assert.equal(failed.length, WORKERS, failed.map((f) => f.text).join('\n'));
  for (const f of failed) assert.equal(f.json<{ error: { reason: string } }>().error.reason, 'upstream_unavailable');
  // After the kill, connections the dead target refused were retried on the other one, until it was ejected.
  const after = answers.slice(killed).filter((a) => a.status === 200);
  assert.equal(after.length, TOTAL - killed - WORKERS);
  for (const a of after) assert.equal(a.json<{ who: string }>().who, alive.name);
  await t.waitForLog((l) => l.msg === 'upstream target ejected after connection failures; other targets take its requests until the cool-down ends' && l.target === dying.up.url, 'the ejection');
  assert.equal(await metric(`wxgw_upstream_target_up{upstream="fo",target="${dying.up.url}"}`), 0);
  assert.equal(await metric(`wxgw_upstream_target_up{upstream="fo",target="${alive.up.url}"}`), 1);
  assert.equal(await metric(`wxgw_upstream_ejections_total{upstream="fo",target="${dying.up.url}",cause="connect"}`), 1);
});

test('an active health check takes a sick target out and brings it back once it passes', async () => {
  const sick = b['hc-b'];
  /** The first line after `mark` that is this health event of the sick target. */
  const event = (mark: number, msg: string, what: string) =>
    waitUntil(() => t.logs.slice(mark).find((l) => l.msg === msg && l.target === sick.up.url), what, { timeoutMs: 30_000 });
  let mark = t.logs.length;
  sick.sick = true;
  await event(mark, 'upstream target failed its health checks; other targets take its requests', 'the target taken out');
  const before = sick.served.length;
  for (let i = 0; i < 6; i++) assert.equal(await who('/hc/x'), 'hc-a');
  assert.equal(sick.served.length, before, 'no request reached the sick target');
  assert.equal(await metric(`wxgw_upstream_target_up{upstream="hc",target="${sick.up.url}"}`), 0);
  assert.ok((await metric(`wxgw_upstream_ejections_total{upstream="hc",target="${sick.up.url}",cause="health_check"}`))! >= 1);
  mark = t.logs.length;
  sick.sick = false;
  await event(mark, 'upstream target passed its health checks and takes requests again', 'the target back');
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(await who('/hc/x'));
  assert.deepEqual([...seen].sort(), ['hc-a', 'hc-b']);
});

test('with every target down the answer is 502 for the failed connections, then 503 upstream_down', async () => {
  // Both targets refuse: the first is tried, then the other once; each failure ejects (failures: 1).
  const first = await get('/dead/x');
  assert.equal(first.status, 502);
  assert.equal(first.json<{ error: { reason: string } }>().error.reason, 'upstream_unavailable');
  const next = await get('/dead/x');
  assert.equal(next.status, 503);
  assert.equal(next.json<{ error: { reason: string } }>().error.reason, 'upstream_down');
});

test('a POST whose connection was refused is sent once more, body and all, to the other target', async () => {
  const before = b.ph.up.received.length;
  // Round robin starts with the first target, the one that refuses.
  const res = await httpsRequest(t.port, t.ca, { path: '/half/order', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":42}' });
  assert.equal(res.status, 200, res.text);
  const got = b.ph.up.received.slice(before);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.method, 'POST');
  assert.equal(got[0]!.body.toString(), '{"sku":42}');
  assert.equal(await metric(`wxgw_upstream_requests_total{upstream="half",target="http://127.0.0.1:${deadPorts[0]}"}`), 1);
});

test('a reload that leaves an upstream alone keeps its targets\' health; one that changes it starts afresh', async () => {
  const file = join(t.ctx.dir, 'gateway.yaml');
  const policy = readFileSync(file, 'utf8');
  // Another route, the upstreams untouched: the dead targets stay ejected, no connection is tried.
  writeFileSync(file, policy.replace('routes:\n', 'routes:\n  - { name: extra, match: { path: /extra }, upstream: rr }\n'));
  assert.equal((await t.gw.reload()).ok, true);
  assert.equal((await get('/dead/x')).json<{ error: { reason: string } }>().error.reason, 'upstream_down');
  // A changed cool-down makes it another upstream: its targets start up, and are tried again.
  writeFileSync(file, policy.replace('eject: { failures: 1, cooldown: 10m }', 'eject: { failures: 1, cooldown: 9m }'));
  assert.equal((await t.gw.reload()).ok, true);
  assert.equal((await get('/dead/x')).json<{ error: { reason: string } }>().error.reason, 'upstream_unavailable');
  assert.equal((await get('/dead/x')).json<{ error: { reason: string } }>().error.reason, 'upstream_down');
});

test('preserve_host sends the client\'s Host in its normal form; without it the target\'s', async () => {
  const preserved = await get('/ph/x', { host: 'Shop.Example.COM.:8443' });
  assert.equal(preserved.json<{ host: string }>().host, 'shop.example.com');
  const plain = await get('/plain/x', { host: 'Shop.Example.COM' });
  assert.equal(plain.json<{ host: string }>().host, `127.0.0.1:${b.ph.up.port}`);
});
