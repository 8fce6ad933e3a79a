// The decrypt and logout endpoints (`identity.decrypt`, `identity.logout`): the route's guards
// have verified the session token (and checked it is not revoked); the gateway reads the small
// body, does the identity module's work and answers itself.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Answered, Passed, Refused } from '../guards/chain.js';
import type { Snapshot } from '../snapshot.js';
import { endpointAnswer } from './endpoint-answer.js';
import { readBody } from './read-body.js';
import type { RequestState } from './request-state.js';

/** `{encryptedData, iv, rawData, signature}`: a few KB; WeRun's month of steps is the largest. */
const DECRYPT_BODY_LIMIT = 128 * 1024;

/** A logout needs no body; a small one (`{}`) is read and ignored. */
const LOGOUT_BODY_LIMIT = 1024;

/** Who is asking, as a wxgw session: a token of the backend's own issuer holds no session_key. */
async function sessionOf(snapshot: Snapshot, headers: IncomingHttpHeaders) {
  return snapshot.identity?.session(headers);
}

export async function answerDecrypt(wx: RequestState, headers: IncomingHttpHeaders, body: Readable | undefined, passed: Passed): Promise<Answered | Refused> {
  const buf = await readBody(body, DECRYPT_BODY_LIMIT);
  const session = await sessionOf(wx.snapshot, headers);
  if (!session) return { kind: 'refuse', reason: 'session_unknown' };
  const result = await wx.snapshot.decrypt!.handle(buf, session, { requestId: wx.id });
  if (result.kind === 'refused') return { kind: 'refuse', reason: result.reason, ...(result.message !== undefined && { message: result.message }) };
  return endpointAnswer(passed, result.body);
}

export async function answerLogout(wx: RequestState, headers: IncomingHttpHeaders, body: Readable | undefined, passed: Passed): Promise<Answered | Refused> {
  await readBody(body, LOGOUT_BODY_LIMIT);
  const session = await sessionOf(wx.snapshot, headers);
  if (!session) return { kind: 'refuse', reason: 'session_unknown', message: 'only a session token wxgw signed at login can be ended here' };
  await wx.snapshot.revocation!.logout(session);
  return endpointAnswer(passed, { logged_out: true, scope: wx.snapshot.revocation!.scope });
}
