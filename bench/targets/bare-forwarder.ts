// Ceiling: a bare node:https server forwarding through an undici.Pool, no framework, no policy.
// argv: port upstreamUrl certFile keyFile
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Pool } from 'undici';

const [port, upstream, cert, key] = process.argv.slice(2) as [string, string, string, string];
const pool = new Pool(upstream, { connections: 128, pipelining: 1 });
const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
  const headers = { ...req.headers };
  delete headers.connection;
  delete headers.host;
  pool.request({ path: req.url ?? '/', method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, (err, data) => {
    if (err) {
      res.writeHead(502).end();
      return;
    }
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(data.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') out[k] = v;
    res.writeHead(data.statusCode, out);
    data.body.pipe(res);
  });
});
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
