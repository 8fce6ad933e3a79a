// Baseline: a plain Fastify + @fastify/http-proxy HTTPS server with default options, no policy.
// argv: port upstreamUrl certFile keyFile
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const [port, upstream, cert, key] = process.argv.slice(2) as [string, string, string, string];
const app = Fastify({ https: { cert: readFileSync(cert), key: readFileSync(key) } });
await app.register(proxy, { upstream });
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.send?.('ready');
