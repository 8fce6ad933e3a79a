// A client that stops reading must not hold its upstream request (and that upstream's pool
// connection) for good: once a write is left waiting for the client's socket to drain, the client
// has `server.limits.send_timeout` to take more, else its connection is cut. Only a stalled write
// arms the timer, so a request waiting for a slow upstream is never cut by it.
import type { ServerResponse } from 'node:http';

/** Calls `resume` when `res` drains; destroys `res` if it has not drained within `timeoutMs`. */
export function awaitDrain(res: ServerResponse, timeoutMs: number, resume: () => void): void {
  const stalled = setTimeout(() => res.destroy(new SendTimeout(timeoutMs)), timeoutMs);
  // A client that leaves meanwhile needs no timer.
  const gone = (): void => clearTimeout(stalled);
  res.once('close', gone);
  res.once('drain', () => {
    clearTimeout(stalled);
    res.off('close', gone);
    resume();
  });
}

/** Why the gateway cut a client: it took nothing for `send_timeout`. */
export class SendTimeout extends Error {
  constructor(ms: number) {
    super(`the client read nothing for ${ms} ms while an answer waited (server.limits.send_timeout)`);
    this.name = 'SendTimeout';
  }
}
