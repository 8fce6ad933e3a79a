// Reads a whole request body the gateway must look at itself (signed callbacks, login), bounded:
// past `limit` bytes the stream is dropped and the request refused, whatever Content-Length said.
import type { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';

export async function readBody(body: Readable | undefined, limit: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving the loop early must not destroy the request, which would reset the connection
  // before the 413 is written: the rest is drained instead (bounded by server.limits.body).
  for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.resume();
      throw new GatewayError('body_too_large', `the body is larger than the ${limit} bytes this route accepts`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
