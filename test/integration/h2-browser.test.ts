// A real browser (Debian's Chromium through playwright-core) negotiates h2 with the gateway and
// gets the same answer over it: what "browsers speak h2" means for wxgw, checked end to end.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser } from 'playwright-core';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const CHROMIUM = process.env.WXGW_CHROMIUM || '/usr/bin/chromium';

let upstream: TestUpstream;
let t: TestGateway;
let browser: Browser;

before(async () => {
  upstream = await startUpstream();
  t = await startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
defaults: { allow: any }
`,
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await t?.close();
  await upstream?.close();
});

test('Chromium negotiates h2 and reads the proxied answer over it', async () => {
  // The chain is issued by the test's own root, which this browser profile does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    const res = await page.goto(`https://localhost:${t.port}/api/page`);
    assert.equal(res?.status(), 200);
    const seen = JSON.parse(await page.evaluate(() => document.body.innerText)) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/api/page');
    assert.equal(seen.headers['x-forwarded-host'], 'localhost');
    const protocol = await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol);
    assert.equal(protocol, 'h2');
    const line = await t.waitForLog((l) => l.path === '/api/page', 'the access-log line');
    assert.equal(line.status, 200);
    assert.equal(line.route, 'api');
  } finally {
    await context.close();
  }
});
