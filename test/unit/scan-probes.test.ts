// The HTTP probes one by one against small local servers that each get one thing wrong (or
// right), through the real Prober: what counts as a finding, and what does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { probeCors } from '../../gateway/scan/cors.js';
import { probeDifferentials } from '../../gateway/scan/differential.js';
import { FOREIGN_HOST, judgeHsts, probePlainHttp } from '../../gateway/scan/http-probes.js';
import { failed, Prober } from '../../gateway/scan/prober.js';
import { ReportBuilder, type Finding } from '../../gateway/scan/report.js';

async function probe(handler: (req: IncomingMessage, res: ServerResponse) => void, run: (p: Prober, r: ReportBuilder) => Promise<void>): Promise<Finding[]> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const prober = new Prober({ host: '127.0.0.1', scheme: 'http', port, httpPort: port }, { rate: 1000, cap: 50, timeoutMs: 2000, sleep: async () => {} });
    const report = new ReportBuilder();
    await run(prober, report);
    return report.findings;
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const levels = (fs: Finding[], rule: string): string[] => fs.filter((f) => f.rule === rule).map((f) => f.level);

test('plain HTTP: a redirect that takes the Host it was given is an open redirect', async () => {
  const fs = await probe(
    (req, res) => {
      res.writeHead(301, { location: `https://${req.headers.host}${req.url}` });
      res.end();
    },
    (p, r) => probePlainHttp(p, r, '/x'),
  );
  assert.deepEqual(levels(fs, 'WX2-PLAIN-HTTP'), ['pass']);
  assert.deepEqual(levels(fs, 'WX2-OPEN-REDIRECT'), ['error']);
  assert.ok(fs.some((f) => f.evidence.some((e) => e.includes(`Location: https://${FOREIGN_HOST}/x`))));
});

test('plain HTTP: a redirect to another http:// URL is no redirect to https', async () => {
  const fs = await probe(
    (_req, res) => {
      res.writeHead(302, { location: 'http://127.0.0.1/login' });
      res.end();
    },
    (p, r) => probePlainHttp(p, r, '/'),
  );
  assert.deepEqual(levels(fs, 'WX2-PLAIN-HTTP'), ['error']);
  assert.deepEqual(levels(fs, 'WX2-OPEN-REDIRECT'), ['pass']);
});

test('HSTS: absent, short, without subdomains, and right', () => {
  const cases: [string | undefined, string][] = [
    [undefined, 'error'],
    ['max-age=86400', 'warning'],
    ['max-age=31536000', 'note'],
    ['max-age=31536000; includeSubDomains; preload', 'pass'],
  ];
  for (const [value, level] of cases) {
    const r = new ReportBuilder();
    judgeHsts(r, 'https://x/', { status: 200, headers: value ? { 'strict-transport-security': value } : {}, body: Buffer.alloc(0) });
    assert.deepEqual(levels(r.findings, 'WX2-HSTS'), [level], String(value));
  }
});

test('HSTS: a short one on this machine is a note, on any other host a warning', () => {
  const cases: [string, string][] = [
    ['https://localhost:8443/', 'note'],
    ['https://127.0.0.1/', 'note'],
    ['https://[::1]/', 'note'],
    ['https://localhost.example.com/', 'warning'],
    ['https://127.0.0.1.example.com/', 'warning'],
    ['https://10.0.0.1/', 'warning'],
  ];
  for (const [url, level] of cases) {
    const r = new ReportBuilder();
    judgeHsts(r, url, { status: 200, headers: { 'strict-transport-security': 'max-age=86400' }, body: Buffer.alloc(0) });
    assert.deepEqual(levels(r.findings, 'WX2-HSTS'), [level], url);
  }
});

test('CORS: `*` with credentials is an error, `*` alone a note, exact origins nothing', async () => {
  const star = await probe(
    (_req, res) => {
      res.writeHead(200, { 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true' });
      res.end('{}');
    },
    (p, r) => probeCors(p, r, '/'),
  );
  assert.deepEqual([...new Set(levels(star, 'WX3-CORS-CREDENTIALS'))], ['error']);
  const open = await probe(
    (_req, res) => {
      res.writeHead(200, { 'access-control-allow-origin': '*' });
      res.end('{}');
    },
    (p, r) => probeCors(p, r, '/'),
  );
  assert.deepEqual([...new Set(levels(open, 'WX3-CORS-WILDCARD'))], ['note']);
  assert.deepEqual(levels(open, 'WX3-CORS-CREDENTIALS'), ['pass']);
  const exact = await probe(
    (_req, res) => {
      res.writeHead(200, { 'access-control-allow-origin': 'https://example.com', 'access-control-allow-credentials': 'true' });
      res.end('{}');
    },
    (p, r) => probeCors(p, r, '/'),
  );
  assert.deepEqual(exact.map((f) => f.level), ['pass']);
});

test('differentials: another spelling or method that gets past a refusal is reported', async () => {
  // A gateway-like rule on the exact lower-case path; the backend behind it matches any case and
  // ignores `;` parameters, and HEAD falls through to it.
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const refused = req.method === 'GET' && req.url === '/api/me';
    res.writeHead(refused ? 401 : 200, { 'content-type': 'application/json' });
    res.end(refused ? '{"error":"identity_required"}' : '{"data":{"phone":"13812345678"}}');
  };
  const fs = await probe(handler, async (p, r) => {
    const baseline = await p.send({ method: 'GET', path: '/api/me' });
    assert.ok(!failed(baseline));
    await probeDifferentials(p, r, '/api/me', baseline);
  });
  const messages = fs.filter((f) => f.rule === 'WX6-PARSER-DIFFERENTIAL' && f.level === 'error').map((f) => f.message);
  assert.equal(messages.length, 3, messages.join('\n'));
  assert.match(messages.join('\n'), /the path in upper case gets 200 where the canonical request is refused with 401/);
  assert.match(messages.join('\n'), /a ;parameter gets 200/);
  assert.match(messages.join('\n'), /HEAD instead of GET gets 200/);

  const strict = await probe(
    (req, res) => {
      res.writeHead(req.url === '/api/me' ? 401 : 404);
      res.end();
    },
    async (p, r) => {
      const baseline = await p.send({ method: 'GET', path: '/api/me' });
      assert.ok(!failed(baseline));
      await probeDifferentials(p, r, '/api/me', { ...baseline, status: 401 });
    },
  );
  assert.deepEqual(levels(strict, 'WX6-PARSER-DIFFERENTIAL'), ['pass']);
});
