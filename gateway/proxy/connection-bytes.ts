// The bytes one request carried, read from its connection's counters: what the connection read
// and wrote since the previous request on it ended. Requests on an HTTP/1.1 connection follow one
// another, so this is the request's head and body in, the answer's head and body out, with
// nothing per chunk; on a TLS connection the counters are of the plaintext, the handshake not
// included. Requests multiplexed on one HTTP/2 connection share its bytes among them.
import type { Socket } from 'node:net';

const seen = new WeakMap<Socket, { read: number; written: number }>();

export function bytesSinceLastRequest(socket: Socket): { in: number; out: number } {
  const read = socket.bytesRead;
  const written = socket.bytesWritten;
  const last = seen.get(socket);
  if (last === undefined) seen.set(socket, { read, written });
  else {
    const delta = { in: read - last.read, out: written - last.written };
    last.read = read;
    last.written = written;
    return { in: Math.max(0, delta.in), out: Math.max(0, delta.out) };
  }
  return { in: read, out: written };
}
