// README's first command, `npm start`, as a fresh clone runs it: the demo binary on its fixed
// ports (8443, 8080, 9901 and the sample backend on 9000), with the chain it generates in certs/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpsRequest } from '../helpers/https-client.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the demo serves the sample backend over HTTPS with a chain that verifies to the printed root', async () => {
  const child = spawn(process.execPath, [join(root, 'bin/wxgw.js'), 'demo'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  try {
    const deadline = Date.now() + 20_000;
    while (!out.includes('try:')) {
      if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the demo did not start (are ports 8443, 8080, 9901 and 9000 free?):\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const rootPath = /root CA to trust +(\S+)/.exec(out)?.[1];
    assert.ok(rootPath, out);
    assert.equal(rootPath, join(root, 'certs/root.pem'));
    const ca = readFileSync(rootPath);

    const user = await httpsRequest(8443, ca, { path: '/api/user' });
    assert.equal(user.status, 200);
    assert.equal(user.json<{ data: { openid: string } }>().data.openid, 'oAbC1234567890demo0000000001');

    const slow = await httpsRequest(8443, ca, { path: '/api/slow?ms=3000' });
    assert.equal(slow.status, 504);

    const redirect = await new Promise<{ status?: number; location?: string }>((resolve, reject) => {
      request({ host: '127.0.0.1', port: 8080, path: '/api/user', headers: { host: 'localhost:8080' } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode, location: res.headers.location });
      })
        .on('error', reject)
        .end();
    });
    assert.deepEqual(redirect, { status: 308, location: 'https://localhost:8443/api/user' });

    const ready = await fetch('http://127.0.0.1:9901/readyz');
    assert.equal(ready.status, 200);

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, out);
  } finally {
    child.kill('SIGKILL');
  }
});
