// Reload through the real binary: file edits (rename over), invalid policies, SIGHUP and
// certificate renewal; and in-process, reloads under a continuous request load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequestRaw, Agent } from 'node:https';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDevChain } from '../../gateway/tls/devchain.js';
import { policyContext, startTestGateway, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { replaceFile, startCli } from '../helpers/process.js';
import { freePort } from '../helpers/ports.js';

function named(name: string): Promise<TestUpstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
}

function policy(ctx: PolicyContext, upstreams: Record<string, string>, route: string, extra = ''): string {
  return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${extra}${ctx.tlsSection}
upstreams:
${Object.entries(upstreams)
  .map(([n, u]) => `  ${n}: { url: "${u}" }`)
  .join('\n')}
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: ${route} }
defaults: { allow: any }
`;
}

test('the CLI reloads on a file change, keeps the old policy on an invalid one, and reloads on SIGHUP', async () => {
  const ctx = await policyContext();
  const a = await named('A');
  const b = await named('B');
  const ups = { a: a.url, b: b.url };
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy(ctx, ups, 'a'));
  const ca = readFileSync(ctx.chain.root);
  const gw = await startCli(file);
  const get = async (): Promise<string> => (await httpsRequest(ctx.httpsPort, ca, { path: '/api/x' })).text;
  try {
    assert.equal(await get(), 'A');

    let mark = gw.output().length;
    replaceFile(file, policy(ctx, ups, 'b'));
    await gw.waitFor(/"msg":"policy reloaded"/, 15_000, mark);
    assert.equal(await get(), 'B');
    const reloaded = JSON.parse(gw.output().slice(mark).split('\n').find((l) => l.includes('policy reloaded'))!) as { ms: number; since: string };
    assert.equal(reloaded.since, 'file change');
    console.log(`change-to-in-force (CLI, file rename): ${reloaded.ms} ms`);

    // An upstream that does not exist: its line is named, and B keeps serving.
    mark = gw.output().length;
    replaceFile(file, policy(ctx, ups, 'c'));
    await gw.waitFor(/the previous policy stays in force/, 15_000, mark);
    assert.match(gw.output().slice(mark), /gateway\.yaml:13:\d+  routes\[0\]\.upstream  .*`c`/);
    assert.equal(await get(), 'B');
    const ready = await fetch(`http://127.0.0.1:${ctx.adminPort}/readyz`);
    assert.equal(ready.status, 200, 'the last good policy serves, so the gateway stays ready');

    // A listener change is refused by name, and the old policy stays.
    mark = gw.output().length;
    replaceFile(file, policy(ctx, ups, 'a').replace(`127.0.0.1:${ctx.httpsPort}`, '127.0.0.1:1'));
    await gw.waitFor(/server\.https\.listen changed from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:1; restart wxgw to apply it/, 15_000, mark);
    assert.equal(await get(), 'B');

    // Written in place rather than renamed over: the watcher sees that too.
    writeFileSync(file, policy(ctx, ups, 'a'));
    await gw.waitFor(/"msg":"policy reloaded"/, 15_000, mark);
    assert.equal(await get(), 'A');
    // SIGHUP reloads without any change to the files.
    mark = gw.output().length;
    gw.child.kill('SIGHUP');
    await gw.waitFor(/"since":"request".*"msg":"policy reloaded"/, 15_000, mark);
    assert.equal(await get(), 'A');
    assert.equal(gw.child.exitCode, null, 'SIGHUP does not end the process');
  } finally {
    gw.kill();
    await a.close();
    await b.close();
  }
});

function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

test('a certificate renewal written over the old files reaches new handshakes; a leaf-only one does not', async () => {
  const ctx = await policyContext();
  const upstream = await named('A');
  // The files the policy names, in a directory of their own, as a certificate manager keeps them.
  const live = mkdtempSync(join(tmpdir(), 'wxgw-live-'));
  const files = { root: join(live, 'root.pem'), fullchain: join(live, 'fullchain.pem'), key: join(live, 'privkey.pem') };
  copyFileSync(ctx.chain.root, files.root);
  copyFileSync(ctx.chain.fullchain, files.fullchain);
  copyFileSync(ctx.chain.key, files.key);
  const tlsSection = ['tls:', `  roots: ${files.root}`, '  certificates:', `    - { cert: ${files.fullchain}, key: ${files.key} }`].join('\n');
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(file, policy({ ...ctx, tlsSection }, { a: upstream.url }, 'a'));
  const renewed = await ensureDevChain(mkdtempSync(join(tmpdir(), 'wxgw-renewed-')));
  const gw = await startCli(file);
  try {
    const before = await servedSerial(ctx.httpsPort);

    let mark = gw.output().length;
    replaceFile(files.root, readFileSync(renewed.root));
    replaceFile(files.fullchain, readFileSync(renewed.fullchain));
    replaceFile(files.key, readFileSync(renewed.key));
    await gw.waitFor(/"msg":"policy reloaded"/, 15_000, mark);
    const after = await servedSerial(ctx.httpsPort);
    assert.notEqual(after, before);
    const res = await httpsRequest(ctx.httpsPort, readFileSync(renewed.root), { path: '/api/x' });
    assert.equal(res.text, 'A', 'the renewed chain verifies against its root');

    // The leaf alone, without its intermediate: refused, the renewed chain stays.
    mark = gw.output().length;
    const pem = readFileSync(renewed.fullchain, 'utf8');
    replaceFile(files.fullchain, pem.slice(0, pem.indexOf('-----END CERTIFICATE-----') + 26));
    await gw.waitFor(/chain incomplete[\s\S]*the previous policy stays in force/, 15_000, mark);
    assert.equal(await servedSerial(ctx.httpsPort), after);
  } finally {
    gw.kill();
    await upstream.close();
  }
});

test('20 reloads under a continuous load: no request fails, every answer is one policy or the other', async () => {
  const a = await named('A');
  const b = await named('B');
  const ups = { a: a.url, b: b.url };
  const t = await startTestGateway((ctx) => policy(ctx, ups, 'a'));
  const file = join(t.ctx.dir, 'gateway.yaml');
  const agent = new Agent({ keepAlive: true, maxSockets: 4, ca: t.ca });
  const seen = { A: 0, B: 0 };
  let failed = 0;
  let running = true;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = httpsRequestRaw({ host: '127.0.0.1', port: t.port, servername: 'localhost', path: '/api/x', headers: { host: 'localhost' }, agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          if (res.statusCode === 200 && (body === 'A' || body === 'B')) seen[body]++;
          else failed++;
          resolve();
        });
      });
      req.on('error', () => {
        failed++;
        resolve();
      });
      req.end();
    });
  const loops = Array.from({ length: 4 }, async () => {
    while (running) await one();
  });
  const timings: number[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const valid = i % 2 === 0;
      writeFileSync(file, valid ? policy(t.ctx, ups, i % 4 === 0 ? 'b' : 'a') : policy(t.ctx, ups, 'nowhere'));
      const result = await t.gw.reload();
      assert.equal(result.ok, valid, JSON.stringify(result));
      if (result.ok) timings.push(result.ms);
      await new Promise((r) => setTimeout(r, 30));
    }
  } finally {
    running = false;
    await Promise.all(loops);
    agent.destroy();
    await t.close();
    await a.close();
    await b.close();
  }
  console.log(`reload under load: ${seen.A + seen.B} requests (A ${seen.A}, B ${seen.B}), ${failed} failed; reload ms min ${Math.min(...timings)} max ${Math.max(...timings)}`);
  assert.equal(failed, 0);
  assert.ok(seen.A > 0 && seen.B > 0);
});

test('a SIGHUP that arrives while the gateway is still starting is applied once it runs, not fatal', async () => {
  const ctx = await policyContext();
  const a = await named('A');
  const file = join(ctx.dir, 'gateway.yaml');
  // A store that never answers holds the start for its 2 s wait: the window for the signal.
  const deadRedis = `store: { kind: redis, redis_url: "redis://127.0.0.1:${await freePort()}" }\n`;
  writeFileSync(file, policy(ctx, { a: a.url }, 'a', deadRedis));
  const gw = await startCli(file, /redis store unreachable at start/);
  try {
    gw.child.kill('SIGHUP');
    await gw.waitFor(/wxgw listening/, 10_000);
    await gw.waitFor(/"since":"request".*"msg":"policy reloaded"/, 15_000);
    assert.equal(gw.child.exitCode, null, 'the process is still running');
    const ca = readFileSync(ctx.chain.root);
    assert.equal((await httpsRequest(ctx.httpsPort, ca, { path: '/api/x' })).text, 'A');
  } finally {
    gw.kill();
    await a.close();
  }
});
