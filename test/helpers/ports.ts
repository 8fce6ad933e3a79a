// Ports for listeners whose number must be written down before they start (a policy file, a
// child process's arguments). "Bind port 0, close, return the number" is racy twice over: the
// kernel hands the same ephemeral ports to outgoing connections, and test files run in parallel
// processes can be handed the same one. So ports come from below the ephemeral range, from a
// block chosen by this process's pid (test processes started together have nearby pids, hence
// different blocks), never handed out twice by one process, and each is probed by binding it.
// What is left (another process in the same block probing the same port at the same moment) is
// retried by the starters: startTestGateway, startRedis and the demo test start again on
// EADDRINUSE with fresh ports; `wxgw start` child processes (startCli) rely on the block alone.
// Port 0 is not an option for the gateway's own listeners: the policy requires 1..65535, and
// the plain-HTTP redirect names the HTTPS port the policy gives.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const BLOCK = 64;
const LOW = 10_000;

/** Below the ephemeral range that connect() draws from (Linux: ip_local_port_range). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return low > LOW + BLOCK ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const blocks = Math.floor((ephemeralLow() - LOW) / BLOCK);
const base = LOW + (process.pid % blocks) * BLOCK;
let next = 0;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port of this process's own block that nothing listens on right now. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < BLOCK; tries++) {
    const port = base + (next++ % BLOCK);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${base}..${base + BLOCK - 1}`);
}

/** True for the error a listener gets when its port was taken after all. */
export function isAddressInUse(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') return true;
  }
  return false;
}
