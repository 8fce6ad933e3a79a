// A stand-in for the legacy mini-program API that wxgw protects. It answers the way old
// backends do, leaking what they should not (session_key, unionid, full phone and ID numbers)
// and letting any site read its answers with the user's cookies (the Origin reflected with
// credentials), so the demo and the tests have something real to put the gateway in front of.
// Run alone: node docker/sample-backend/server.mjs [port] (default 9000, or $PORT).
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const users = [
  {
    openid: 'oAbC1234567890demo0000000001',
    unionid: 'uDeF0987654321demo0000000001',
    session_key: 'tiihtNczf5v6AKRyjwEUhQ==',
    nickname: 'Demo User',
    phone: '13812345678',
    idcard: '11010519491231002X',
    address: { city: 'Shenzhen', phone: '13987654321' },
  },
];

// About 1 KB of JSON, the size of a typical mini-program API answer; the benchmarks fetch it.
const feed = JSON.stringify({
  code: 0,
  list: Array.from({ length: 7 }, (_, i) => ({
    id: 1000 + i,
    title: `Item ${i} of the legacy feed`,
    price_fen: 1990 + i * 100,
    cover: `https://img.example.com/items/${1000 + i}.jpg`,
    tags: ['new', 'popular'],
  })),
});

// About 1 KB: one user record as a legacy member API returns it, secrets and all.
const member = JSON.stringify({
  code: 0,
  data: {
    ...users[0],
    level: 'gold',
    points: 12840,
    registered_at: '2019-03-14T08:21:55+08:00',
    addresses: [
      { name: 'Home', contact: 'Demo User', phone: '13812345678', city: 'Shenzhen', street: 'Keyuan Road 88, Building 3, Room 1201', zip: '518057' },
      { name: 'Office', contact: 'Demo User', phone: '13987654321', city: 'Shenzhen', street: 'Shennan Avenue 6001, Tower B, Floor 21', zip: '518040' },
    ],
    recent_orders: Array.from({ length: 6 }, (_, i) => ({ id: `E2024${1000 + i}`, total_fen: 5990 + i * 1000, status: 'delivered' })),
  },
});

/** One record of the export: a user as a legacy export streams them. */
function exportRecord(i) {
  const n = String(i).padStart(8, '0');
  return JSON.stringify({
    id: i,
    openid: `oExport${n}`,
    unionid: `uExport${n}`,
    session_key: 'tiihtNczf5v6AKRyjwEUhQ==',
    nickname: `User ${i}`,
    phone: `138${n}`,
    idcard: '11010519491231002X',
    city: 'Shenzhen',
  });
}

// 256 records, built once: the export repeats them, so that the backend is never what limits
// a benchmark of the gateway's streaming.
const exportBlock = Buffer.from(Array.from({ length: 256 }, (_, i) => exportRecord(i)).join(','));

/** About `mb` megabytes of a JSON array of user records, streamed with backpressure. */
function streamExport(res, mb) {
  const target = Math.max(1, Math.min(mb, 1024)) * 1024 * 1024;
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
  res.write('[');
  let sent = 0;
  const pump = () => {
    while (sent < target) {
      if (sent > 0) res.write(',');
      sent += exportBlock.length;
      if (!res.write(exportBlock)) return res.once('drain', pump);
    }
    res.end(']');
  };
  pump();
}

function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// The demo's stand-in for WeChat's jscode2session (the real API is not reachable from a demo):
// any code works once, and the same code always gives the same openid.
export const DEMO_APPID = 'wx5823bf96d3bd56c7';
export const DEMO_APP_SECRET = 'demo-app-secret-not-for-production';
const usedCodes = new Set();

function jscode2session(url, res) {
  const q = url.searchParams;
  // WeChat answers errors with HTTP 200 and text/plain, as here.
  const answer = (body) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(JSON.stringify(body));
  };
  if (q.get('appid') !== DEMO_APPID || q.get('secret') !== DEMO_APP_SECRET) return answer({ errcode: 40125, errmsg: 'invalid appsecret' });
  const code = q.get('js_code') ?? '';
  if (code === '' || q.get('grant_type') !== 'authorization_code') return answer({ errcode: 40029, errmsg: 'invalid code' });
  if (usedCodes.has(code)) return answer({ errcode: 40163, errmsg: 'code been used' });
  usedCodes.add(code);
  const id = createHash('sha256').update(code).digest('base64url').slice(0, 20);
  return answer({ openid: `oDemo${id}`, unionid: `uDemo${id}`, session_key: randomBytes(16).toString('base64') });
}

/** The CORS setting copied from a forum answer: whoever asks may read, cookies and all. */
function corsForAnyone(req, res) {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('access-control-allow-credentials', 'true');
  if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) return false;
  res.writeHead(204, {
    'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
    'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
  });
  res.end();
  return true;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://backend');
  const path = url.pathname;
  if (corsForAnyone(req, res)) return;
  if (path === '/api/user' || path === '/api/user/profile') {
    return json(res, 200, { code: 0, data: users[0] });
  }
  if (path === '/api/member') {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(member) });
    return res.end(member);
  }
  if (path === '/api/export') return streamExport(res, Number(url.searchParams.get('mb') ?? 50) || 50);
  if (path === '/api/feed') {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(feed) });
    return res.end(feed);
  }
  if (path === '/api/users') {
    return json(res, 200, { code: 0, list: users });
  }
  if (path === '/api/slow') {
    const ms = Math.min(Number(url.searchParams.get('ms') ?? 3000) || 0, 60_000);
    await new Promise((r) => setTimeout(r, ms));
    return json(res, 200, { code: 0, slept_ms: ms });
  }
  if (path === '/api/error') {
    return json(res, 500, { code: 50001, message: 'internal error in legacy backend', stack: 'at LegacyService.getUser (service.js:42)' });
  }
  if (path === '/api/echo' || path.startsWith('/admin/')) {
    const body = await readBody(req);
    return json(res, 200, {
      method: req.method,
      path: req.url,
      headers: req.headers,
      body: body.toString('utf8'),
    });
  }
  if (path === '/sns/jscode2session') return jscode2session(url, res);
  if (path === '/api/me') {
    // The gateway put the verified openid here; a legacy backend trusts it because wxgw removed
    // any copy the client sent.
    return json(res, 200, { code: 0, data: { ...users[0], openid: req.headers['x-wx-openid'] ?? null } });
  }
  if (path === '/wx/callback') {
    // Receives the message wxgw verified and decrypted; "success" tells WeChat it was handled.
    await readBody(req);
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('success');
  }
  if (path === '/healthz') return json(res, 200, { status: 'ok' });
  return json(res, 404, { code: 404, message: `no such endpoint: ${path}` });
}

export function startSampleBackend(port = 9000, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) json(res, 500, { code: 500, message: String(err) });
      else res.destroy(err);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 9000);
  const host = process.env.HOST ?? '0.0.0.0';
  startSampleBackend(port, host).then(() => console.log(`sample legacy backend on http://${host}:${port}`));
}
