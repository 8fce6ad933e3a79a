#!/usr/bin/env node
// Runs the compiled CLI; `npm ci` builds it through the `prepare` script.
import { existsSync } from 'node:fs';

// Named `wxgw`, not `node`, in ps, top and /proc/PID/comm, so `pidof wxgw` and `pkill -HUP -x wxgw` find it.
process.title = 'wxgw';

// Node 20 and older get no security fixes; a security gateway does not start on them.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(`wxgw: Node.js 24 LTS or newer is required (this is ${process.version}); see README.md for how to install it`);
  process.exit(1);
}

const cli = new URL('../dist/gateway/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('wxgw: the build is missing (dist/gateway/cli.js). Run `npm ci` or `npm run build` in the wxgw folder.');
  process.exit(1);
}
await import(cli.href);
