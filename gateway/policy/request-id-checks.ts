// `server.request_id.header` names a header the gateway sets on every request and answer: it
// must be one the client's copy of can be dropped in every spelling, and no header that already
// means something else to the gateway, the upstream or the client.
import { CLIENT_CLAIMS, GATEWAY_FORWARDING, foldHeaderName } from '../net/header-names.js';
import { isRecord } from './key-path.js';
import { show, type Reporter } from './report.js';

/** Headers that frame a message, carry credentials or route it: never a request id. */
const TAKEN = new Set([
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'authorization',
  'cookie',
  'set-cookie',
  'traceparent',
  'tracestate',
]);

export function checkRequestId(report: Reporter, server: Record<string, unknown>, identityHeaders: readonly string[]): void {
  const section = server.request_id;
  if (!isRecord(section) || typeof section.header !== 'string') return;
  const at = ['server', 'request_id', 'header'];
  const name = section.header.toLowerCase();
  if (name !== foldHeaderName(name)) {
    report.error(at, `${show(section.header)} is not the \`-\` spelling: write \`${foldHeaderName(name)}\`, the one a backend reads every spelling as`);
  } else if (TAKEN.has(name) || name.startsWith('access-control-') || name.startsWith('sec-')) {
    report.error(at, `${show(section.header)} already means something else to clients and upstreams: name a header of its own, such as x-request-id or x-trace-id`);
  } else if (name !== 'x-request-id' && GATEWAY_FORWARDING.includes(name)) {
    report.error(at, `${show(section.header)} is one of the forwarding headers the gateway states itself: name a header of its own, such as x-request-id or x-trace-id`);
  } else if (CLIENT_CLAIMS.includes(name) || identityHeaders.includes(name)) {
    report.error(at, `${show(section.header)} already carries a client claim or the verified identity: name a header of its own, such as x-request-id or x-trace-id`);
  }
}
