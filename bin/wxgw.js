#!/usr/bin/env node
// Runs the compiled CLI; `npm ci` builds it through the `prepare` script.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/gateway/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('wxgw: the build is missing (dist/gateway/cli.js). Run `npm ci` or `npm run build` in the wxgw folder.');
  process.exit(1);
}
await import(cli.href);
