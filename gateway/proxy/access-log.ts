// One access-log line and the route's metrics per request, whichever path answered it. The path
// and query go through the redactor of the snapshot the request started with.
import type { Socket } from 'node:net';
import { REASONS } from '../errors.js';
import { accessLogger, type Logger } from '../observability/logger.js';
import { isAdmission, type Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import { ShadowLog } from '../observability/shadow-log.js';
import { bytesIn, openidHash, tlsOf, userAgent } from './access-log-fields.js';
import type { RequestState } from './request-state.js';

export type AccessLog = (wx: RequestState, method: string, status: number, finished: boolean) => void;

/** The line for a request Node's HTTP parser refused: nothing of it was read but who sent it. */
export type ParserRefusalLog = (socket: Socket, id: string, status: number, reason: string, bytesOut: number) => void;

/**
 * Requests the HTTP parser refuses (garbage, oversized headers, too slow) never become requests:
 * their line has the peer, the TLS session and the gateway's answer, and no request line or
 * header, which could be anything.
 */
export function createParserRefusalLog(logger: Logger): ParserRefusalLog {
  const access = accessLogger(logger);
  return (socket, id, status, reason, bytesOut) => {
    const tls = tlsOf(socket);
    access.info(
      {
        request_id: id,
        status,
        reason,
        client_ip: socket.remoteAddress,
        bytes_in: 0,
        bytes_out: bytesOut,
        tls_version: tls.version,
        sni: tls.sni,
      },
      'request',
    );
  };
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

export function createAccessLog(logger: Logger, decisions: Decisions, metrics: Metrics): AccessLog {
  const access = accessLogger(logger);
  const shadowLog = new ShadowLog(logger, metrics);
  return (wx, method, statusCode, finished) => {
    let status = statusCode;
    // A response that never finished, and that the gateway did not cut itself (an upstream or a
    // masker failing mid-body set their reason, and the line keeps the status that was sent),
    // was cut short by the client going away.
    if (!finished && (wx.reason === undefined || isAdmission(wx.reason))) {
      wx.reason = 'client_closed';
      decisions.count('client_closed');
      status = REASONS.client_closed.status;
    }
    const totalMs = performance.now() - wx.start;
    const { redactor } = wx.snapshot;
    const routeMetrics = metrics.route(wx.route);
    routeMetrics.request(method, status);
    if (wx.reason !== undefined && !isAdmission(wx.reason)) routeMetrics.refusal(wx.reason);
    if (wx.callback === 'replayed' || wx.callback === 'deduplicated') metrics.callbackReplay(wx.route, wx.callback);
    else if (wx.reason === 'callback_in_flight') metrics.callbackReplay(wx.route, 'in_flight');
    // The line's own counts, so the metrics and the log add up to the same bytes.
    const received = bytesIn(wx);
    if (received !== undefined) routeMetrics.bytesIn.inc(received);
    routeMetrics.bytesOut.inc(wx.bytesOut);
    routeMetrics.duration.observe(totalMs / 1000);
    if (wx.upstreamMs !== undefined) routeMetrics.upstreamDuration.observe(wx.upstreamMs / 1000);
    // Only routes with a rule in report mode have any.
    const shadow = wx.shadow === undefined && wx.maskReport === undefined ? undefined : shadowLog.record(wx);
    const tls = wx.tls;
    access.info(
      {
        request_id: wx.id,
        trace_id: wx.traceId,
        route: wx.route,
        method,
        host: wx.host,
        // Paths and queries carry personal data too (`/users/13812345678?phone=...`).
        path: wx.path === undefined ? undefined : redactor.path(wx.path),
        query: wx.query === undefined ? undefined : redactor.query(wx.query),
        status,
        reason: wx.reason,
        // The profile's name only: which view of the data this caller was given.
        mask: wx.mask,
        shadow,
        callback: wx.callback,
        client_ip: wx.address.client,
        user_agent: userAgent(wx.message.headers['user-agent']),
        bytes_in: received,
        bytes_out: wx.bytesOut,
        tls_version: tls.version,
        sni: tls.sni,
        upstream: wx.upstream,
        upstream_status: wx.upstreamStatus,
        upstream_ms: wx.upstreamMs === undefined ? undefined : round(wx.upstreamMs),
        total_ms: round(totalMs),
        openid_hash: openidHash(wx),
      },
      'request',
    );
  };
}
