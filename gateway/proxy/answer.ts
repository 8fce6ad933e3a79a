// What happens to an upstream's answer before the client sees it: passed as it streams, masked
// (masking/http.ts decides how), or sealed back into a signed, encrypted callback reply.
import type { CompiledMask } from '../masking/compile.js';
import { maskResponse } from '../masking/http.js';
import type { CallbackOutcome } from '../guards/callback-types.js';
import type { ForwardResponse } from './forwarder.js';
import { readBody } from './read-body.js';

type Seal = NonNullable<Extract<CallbackOutcome, { kind: 'forward' }>['sealReply']>;

export type AnswerPlan =
  | { kind: 'stream' }
  | { kind: 'mask'; mask: CompiledMask; failOpen: boolean }
  | { kind: 'seal'; seal: Seal };

export type AnswerOutcome =
  /** Send `res` as it is: nothing in it is the plan's concern. */
  | { kind: 'stream'; res: ForwardResponse }
  /** Send `res` (new headers, and a new body stream unless `buffered` holds the whole body). */
  | { kind: 'ready'; res: ForwardResponse; buffered?: Buffer; passedUnmasked?: string }
  | { kind: 'failed'; reason: 'mask_failed' | 'upstream_unavailable'; why: string };

/** A callback reply is a few hundred bytes; anything near this is not one. */
const SEAL_LIMIT = 1024 * 1024;

/** Marks errors a masking stream raises mid-body, so the connection cut is logged as mask_failed. */
function tagMaskErrors(body: ForwardResponse['body']): void {
  body.prependListener('error', (err: Error & { reason?: string }) => {
    if (err.name === 'MaskError') err.reason = 'mask_failed';
  });
}

export async function sendAnswer(plan: AnswerPlan, res: ForwardResponse, method: string): Promise<AnswerOutcome> {
  if (plan.kind === 'stream' || method === 'HEAD') return { kind: 'stream', res };
  if (plan.kind === 'seal') {
    const encoding = res.headers['content-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      res.body.destroy();
      return { kind: 'failed', reason: 'upstream_unavailable', why: `the callback reply is ${String(encoding)}-encoded; sealing needs it plain` };
    }
    const body = await readBody(res.body, SEAL_LIMIT);
    const contentType = res.headers['content-type'];
    const sealed = plan.seal({ contentType: typeof contentType === 'string' ? contentType : undefined, body });
    const headers: ForwardResponse['headers'] = { ...res.headers, 'content-type': sealed.contentType, 'content-length': String(sealed.body.length) };
    delete headers['etag'];
    return { kind: 'ready', res: { ...res, headers }, buffered: sealed.body };
  }
  const outcome = await maskResponse(plan.mask, res);
  switch (outcome.kind) {
    case 'untouched':
      return { kind: 'stream', res };
    case 'masked':
      if (Buffer.isBuffer(outcome.body)) return { kind: 'ready', res: { ...res, headers: outcome.headers }, buffered: outcome.body };
      tagMaskErrors(outcome.body);
      return { kind: 'ready', res: { ...res, headers: outcome.headers, body: outcome.body } };
    case 'failed':
      if (plan.failOpen && outcome.original) {
        return { kind: 'ready', res: { ...res, headers: outcome.original.headers }, buffered: outcome.original.body, passedUnmasked: outcome.why };
      }
      return { kind: 'failed', reason: 'mask_failed', why: outcome.why };
  }
}
