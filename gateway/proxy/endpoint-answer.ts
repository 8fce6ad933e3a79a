// What the gateway's own identity endpoints (login, phone, decrypt, logout) answer on success:
// their JSON, never cached, with the headers the route's guards added to the answer (CORS).
import type { Answered, Passed } from '../guards/chain.js';

export function endpointAnswer(passed: Passed, body: unknown): Answered {
  return {
    kind: 'answer',
    status: 200,
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify(body),
    headers: { ...passed.answerAdded, 'cache-control': 'no-store' },
  };
}
