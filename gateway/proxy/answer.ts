// What happens to an upstream's answer before the client sees it: passed as it streams, masked
// (masking/http.ts decides how), or sealed back into a signed, encrypted callback reply.
import { maskHeaders } from '../masking/header-rules.js';
import { MaskError, maskHead, maskResponse, maskWhole, type MaskOutcome } from '../masking/http.js';
import type { Readable } from 'node:stream';
import type { AnswerPlan, RouteAnswer } from '../snapshot.js';
import type { Passed } from '../guards/chain.js';
import type { RequestState } from './request-state.js';
import type { CompiledMask } from '../masking/compile.js';
import { dryRunAnswer, type MaskFindings } from '../masking/dry-run.js';
import type { ForwardResponse } from './forwarder.js';
import { readBody } from './read-body.js';

export type AnswerOutcome =
  /** Send this answer; `passedUnmasked` says why it goes out unmasked (on_mask_error: pass). */
  | { kind: 'ready'; res: ForwardResponse; passedUnmasked?: string; maskReport?: MaskFindings }
  | { kind: 'failed'; reason: 'mask_failed' | 'upstream_unavailable'; why: string };

/** A callback reply is a few hundred bytes; anything near this is not one. */
const SEAL_LIMIT = 1024 * 1024;

/** Marks errors a masking stream raises mid-body, so the connection cut is logged as mask_failed. */
function tagMaskErrors(body: Readable): void {
  body.prependListener('error', (err: Error) => {
    if (err instanceof MaskError) (err as MaskError & { reason?: string }).reason = 'mask_failed';
  });
}

/**
 * The plan for this request's answer: the route's own, or the one its caller's verified identity
 * picks. Notes the mask profile applied for the access log.
 */
export function planFor(answer: RouteAnswer, passed: Passed, wx: RequestState): AnswerPlan {
  if (answer.kind === 'choose') {
    const chosen = answer.choose(passed.openid, passed.claims);
    wx.mask = chosen.profile;
    return chosen.plan;
  }
  if (answer.kind === 'mask') wx.mask = answer.mask.name;
  return answer;
}

/** How many bytes of an answer under this plan are worth collecting whole before deciding. */
export function collectUpTo(plan: HeldPlan): number {
  return plan.kind === 'seal' ? SEAL_LIMIT : plan.mask.streamAbove;
}

type HeldPlan = Exclude<AnswerPlan, { kind: 'stream' }>;

/**
 * What becomes of a held answer. Decided on the spot when the answer allows it (HEAD, or a whole
 * body that needs no decoding: most small JSON answers and callback replies); a promise only when
 * the body must be decoded or read first.
 */
export function settle(plan: HeldPlan, res: ForwardResponse, method: string): AnswerOutcome | Promise<AnswerOutcome> {
  if (method === 'HEAD') return plan.kind === 'mask' ? head(plan.mask, res) : { kind: 'ready', res };
  if (plan.kind === 'seal') {
    if (Buffer.isBuffer(res.body)) return seal(plan, res, res.body);
    return readBody(res.body, SEAL_LIMIT).then((body) => seal(plan, res, body));
  }
  if (plan.kind === 'mask_report') return reported(plan.mask, res, method);
  const now = Buffer.isBuffer(res.body) ? maskWhole(plan.mask, { ...res, body: res.body }) : undefined;
  return now ? fromMask(plan, res, now) : maskResponse(plan.mask, res).then((outcome) => fromMask(plan, res, outcome));
}

/** Report mode: the answer as the upstream sent it, with what masking would have done to it. */
function reported(mask: CompiledMask, res: ForwardResponse, method: string): Promise<AnswerOutcome> {
  return dryRunAnswer(mask, res, method).then(({ findings, body }): AnswerOutcome => ({ kind: 'ready', res: { ...res, body }, maskReport: findings }));
}

function seal(plan: Extract<AnswerPlan, { kind: 'seal' }>, res: ForwardResponse, body: Buffer): AnswerOutcome {
  const encoding = res.headers['content-encoding'];
  if (encoding !== undefined && encoding !== 'identity') {
    return { kind: 'failed', reason: 'upstream_unavailable', why: `the callback reply is ${String(encoding)}-encoded; sealing needs it plain` };
  }
  const contentType = res.headers['content-type'];
  const sealed = plan.seal({ status: res.statusCode, contentType: typeof contentType === 'string' ? contentType : undefined, body });
  const headers: ForwardResponse['headers'] = { ...res.headers, 'content-type': sealed.contentType, 'content-length': String(sealed.body.length) };
  delete headers['etag'];
  return { kind: 'ready', res: { statusCode: res.statusCode, headers, body: sealed.body } };
}

/** HEAD on a masked route: no length or digest of the unmasked body, and the profile's header rules. */
function head(mask: CompiledMask, res: ForwardResponse): AnswerOutcome {
  const outcome = maskHead(mask, res);
  if ('failed' in outcome) return { kind: 'failed', reason: 'mask_failed', why: outcome.failed };
  return { kind: 'ready', res: { statusCode: res.statusCode, headers: maskHeaders(mask.headers, outcome.headers, mask.hashKey), body: res.body } };
}

function fromMask(plan: Extract<AnswerPlan, { kind: 'mask' }>, res: ForwardResponse, outcome: MaskOutcome): AnswerOutcome {
  const { mask } = plan;
  // Headers are the profile's to mask whatever became of the body, passed unmasked included.
  const ready = (r: ForwardResponse, passedUnmasked?: string): AnswerOutcome => ({
    kind: 'ready',
    res: { statusCode: r.statusCode, headers: maskHeaders(mask.headers, r.headers, mask.hashKey), body: r.body },
    ...(passedUnmasked !== undefined && { passedUnmasked }),
  });
  switch (outcome.kind) {
    case 'untouched':
      return ready(res);
    case 'masked':
      if (!Buffer.isBuffer(outcome.body)) tagMaskErrors(outcome.body);
      return ready({ statusCode: res.statusCode, headers: outcome.headers, body: outcome.body });
    case 'failed':
      if (plan.failOpen && outcome.original) return ready({ statusCode: res.statusCode, ...outcome.original }, outcome.why);
      return { kind: 'failed', reason: 'mask_failed', why: outcome.why };
  }
}
