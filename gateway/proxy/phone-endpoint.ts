// The phone endpoint (`identity.phone.path`): the route's guards (identity included) have passed;
// the gateway reads the small JSON body, has identity/phone.ts exchange the code and tell the
// backend, and answers the client the masked number itself.
import type { Readable } from 'node:stream';
import type { Answered, Passed, Refused } from '../guards/chain.js';
import type { PhoneEndpoint } from '../identity/phone.js';
import { endpointAnswer } from './endpoint-answer.js';
import { readBody } from './read-body.js';
import type { RequestState } from './request-state.js';

const PHONE_BODY_LIMIT = 16 * 1024;

export async function answerPhone(phone: PhoneEndpoint, wx: RequestState, body: Readable | undefined, passed: Passed): Promise<Answered | Refused> {
  const result = await phone.handle(await readBody(body, PHONE_BODY_LIMIT), { requestId: wx.id, verified: passed.added });
  if (result.kind === 'refused') {
    const retry = result.retryAfterMs !== undefined ? { 'retry-after': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))) } : undefined;
    return { kind: 'refuse', reason: result.reason, ...(result.message !== undefined && { message: result.message }), ...(retry && { headers: retry }) };
  }
  return endpointAnswer(passed, result.body);
}
