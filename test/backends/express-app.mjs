// A legacy Express app behind the gateway (`node express-app.mjs PORT`), with Express's defaults:
// its router matches without regard to case and with or without a trailing slash, and a GET
// handler also serves HEAD. It acts on client claims the way common Express apps do (the
// method-override middleware's X-HTTP-Method-Override on POST, a client-IP helper, IIS-style
// X-Original-URL), logs what it understood to BACKEND_LOG (one JSON line per request), then
// answers it.
import { appendFileSync, readFileSync } from 'node:fs';
import express from 'express';

const here = new URL('.', import.meta.url);
const claims = JSON.parse(readFileSync(new URL('claims.json', here), 'utf8'));
const personal = readFileSync(new URL('personal.json', here), 'utf8').trim();
const clientIpHeaders = ['client-ip', 'true-client-ip', 'cf-connecting-ip', 'x-client-ip', 'x-cluster-client-ip',
  'x-real-ip', 'x-original-forwarded-for', 'x-forwarded-for', 'x-forwarded', 'forwarded-for'];

// kind -> [headers, body]: the ways legacy backends label JSON.
const maskAnswers = {
  html: [{ 'Content-Type': 'text/html; charset=utf-8' }, personal],
  plain: [{ 'Content-Type': 'text/plain' }, personal],
  'text-json': [{ 'Content-Type': 'text/json' }, personal],
  'x-json': [{ 'Content-Type': 'application/x-json' }, personal],
  'problem-json': [{ 'Content-Type': 'application/problem+json' }, personal],
  javascript: [{ 'Content-Type': 'application/javascript' }, personal],
  json: [{ 'Content-Type': 'application/json' }, personal],
  none: [{}, personal],
  empty: [{ 'Content-Type': '' }, personal],
  dup: [{ 'Content-Type': ['text/html', 'application/json'] }, personal],
  text: [{ 'Content-Type': 'text/plain' }, 'Call Mei at 13812345678 after six.\n'],
  hello: [{ 'Content-Type': 'text/plain' }, 'hello world\n'],
  cookie: [
    {
      'Content-Type': 'application/json',
      'Set-Cookie': ['session_key=SK-COOKIE-SECRET; Path=/; HttpOnly', 'theme=dark; Path=/'],
      'X-User-Phone': '13812345678',
      'X-Phone': '13812345678',
    },
    '{"ok":true}',
  ],
};

const app = express();
app.use(express.text({ type: () => true }));

// What the method-override package does: routing then uses the overridden method.
app.use((req, _res, next) => {
  req.rawMethod = req.method;
  const override = req.get('x-http-method-override') ?? req.get('x-http-method') ?? req.get('x-method-override');
  if (req.method === 'POST' && override) req.method = override.toUpperCase();
  const original = req.get('x-original-url') ?? req.get('x-rewrite-url');
  if (original) req.url = original;
  next();
});

function report(req, route) {
  let clientIp = req.socket.remoteAddress;
  for (const name of clientIpHeaders) {
    const value = req.get(name);
    if (value) {
      clientIp = value.split(',')[0].trim();
      break;
    }
  }
  const line = {
    server: 'express',
    route,
    method: req.method,
    raw_method: req.rawMethod,
    path: req.path,
    request_uri: req.originalUrl,
    openid: req.get('x-wx-openid') ?? null,
    callback_verified: req.get('x-wx-callback-verified') ?? null,
    client_ip: clientIp,
    host: req.get('x-original-host') ?? req.get('x-host') ?? req.get('x-forwarded-host') ?? req.get('host') ?? null,
    forwarded_host: req.get('x-forwarded-host') ?? null,
    scheme: req.get('x-forwarded-scheme') ?? req.get('x-forwarded-proto') ?? null,
    claims: Object.fromEntries(claims.map((name) => [name, req.get(name) ?? null])),
    headers: req.headers,
    body: typeof req.body === 'string' ? req.body : '',
  };
  appendFileSync(process.env.BACKEND_LOG, `${JSON.stringify(line)}\n`);
  return line;
}

const answer = (route) => (req, res) => res.json(report(req, route));

app.all('/api/internal{/*rest}', answer('internal'));
app.all('/api/me{/*rest}', answer('me'));
app.post('/wx/callback', answer('callback'));
app.get('/reports{/*rest}', answer('reports'));
app.all('/reports{/*rest}', answer('reports'));
app.get('/mask/:kind', (req, res) => {
  report(req, 'mask');
  const found = maskAnswers[req.params.kind];
  if (!found) return res.status(404).json({ error: 'no such kind' });
  const [headers, body] = found;
  res.removeHeader('Content-Type');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
});
app.all('/api{/*rest}', answer('api'));
app.all('/{*rest}', answer('fallback'));

const server = app.listen(Number(process.argv[2]), '127.0.0.1', () => {
  console.log('listening', server.address().port);
});
