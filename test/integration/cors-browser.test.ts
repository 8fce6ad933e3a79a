// CORS as a real browser enforces it: Debian's Chromium, driven headless by playwright-core, loads
// pages from an allowed and a foreign origin (host names mapped to 127.0.0.1) that call the real
// wxgw over HTTPS with credentials. The browser, not our reading of the spec, decides what passes.
// Chromium is required: in CI .ci/run installs it, and a missing browser fails this file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** The browser to drive: WXGW_CHROMIUM where Chromium lives elsewhere. */
const CHROMIUM = process.env.WXGW_CHROMIUM || '/usr/bin/chromium';

interface FetchOutcome {
  ok?: boolean;
  status?: number;
  body?: string;
  error?: string;
}

describe('CORS in a real browser', () => {
  let upstream: TestUpstream;
  let pages: Server;
  let pagePort: number;
  let t: TestGateway;
  let browser: Browser;
  let context: BrowserContext;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      // A legacy backend that would let every site in: the gateway must not let that through.
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ method: req.method, cookie: req.headers.cookie ?? null }));
    });
    pages = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>page</title>');
    });
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
    pagePort = (pages.address() as AddressInfo).port;
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/, methods: [GET, POST] }
    upstream: legacy
    allow: any
    cors: { origins: ["http://app.test:${pagePort}"], credentials: true, methods: [GET, POST], headers: [content-type] }
`,
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--host-resolver-rules=MAP app.test 127.0.0.1, MAP evil.test 127.0.0.1',
      ],
    });
    // The gateway's chain is issued by the test's own root, which this browser profile does not
    // know; everything else about the HTTPS connection is real.
    context = await browser.newContext({ ignoreHTTPSErrors: true });
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await t.close();
    await upstream.close();
    await new Promise((resolve) => pages.close(resolve));
  });

  /** Opens a page on `host` and runs fetch() there against the gateway. */
  async function fetchFrom(host: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<FetchOutcome> {
    const page = await context.newPage();
    try {
      await page.goto(`http://${host}:${pagePort}/`);
      const url = `https://localhost:${t.port}/api/feed`;
      return await page.evaluate(
        async ({ url, init }) => {
          try {
            const res = await fetch(url, { ...init, credentials: 'include' });
            return { ok: res.ok, status: res.status, body: await res.text() };
          } catch (err) {
            return { error: String(err) };
          }
        },
        { url, init },
      );
    } finally {
      await page.close();
    }
  }

  test('a page on an allowed origin reads the answer of a credentialed fetch', async () => {
    const out = await fetchFrom('app.test');
    assert.equal(out.error, undefined, out.error);
    assert.equal(out.status, 200);
    assert.equal((JSON.parse(out.body!) as { method: string }).method, 'GET');
  });

  test('a page on another origin is blocked by the browser, despite the upstream answering *', async () => {
    const out = await fetchFrom('evil.test');
    assert.match(out.error ?? '', /TypeError/, JSON.stringify(out));
  });

  test('a preflighted request passes from the allowed origin; the preflight never reaches the upstream', async () => {
    const before = upstream.received.length;
    const out = await fetchFrom('app.test', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(out.error, undefined, out.error);
    assert.equal((JSON.parse(out.body!) as { method: string }).method, 'POST');
    assert.deepEqual(upstream.received.slice(before).map((r) => r.method), ['POST']);
  });

  test('a request header the policy does not list fails the preflight in the browser', async () => {
    const before = upstream.received.length;
    const out = await fetchFrom('app.test', { method: 'POST', headers: { 'content-type': 'application/json', 'x-admin': '1' }, body: '{}' });
    assert.match(out.error ?? '', /TypeError/, JSON.stringify(out));
    assert.equal(upstream.received.length, before);
  });
});
