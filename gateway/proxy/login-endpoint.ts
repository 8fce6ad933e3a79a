// The login endpoint (`identity.login.path`): the route's guards have passed, the gateway reads the
// small JSON body, exchanges the code with WeChat (identity/login.ts) and answers itself.
import type { Readable } from 'node:stream';
import type { Answered, Passed, Refused } from '../guards/chain.js';
import type { LoginEndpoint } from '../snapshot.js';
import { endpointAnswer } from './endpoint-answer.js';
import { readBody } from './read-body.js';
import type { RequestState } from './request-state.js';

/** Largest login request body: `{"code": "..."}` and little else. */
const LOGIN_BODY_LIMIT = 16 * 1024;

export async function answerLogin(login: LoginEndpoint, wx: RequestState, body: Readable | undefined, passed: Passed): Promise<Answered | Refused> {
  const result = await login.handle(await readBody(body, LOGIN_BODY_LIMIT), { requestId: wx.id });
  if (result.kind === 'refused') {
    return { kind: 'refuse', reason: result.reason, ...(result.message !== undefined && { message: result.message }), ...(result.headers && { headers: result.headers }) };
  }
  // The access line follows the user who just logged in (as an HMAC, never the openid itself).
  if (typeof result.body.openid === 'string') wx.openid = result.body.openid;
  return endpointAnswer(passed, result.body);
}
