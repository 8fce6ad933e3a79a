// One access-log line and the route's metrics per request, whichever path answered it. The path
// and query go through the redactor of the snapshot the request started with.
import { REASONS } from '../errors.js';
import { accessLogger, type Logger } from '../observability/logger.js';
import { isAdmission, type Decisions } from '../observability/decisions.js';
import type { Metrics } from '../observability/metrics.js';
import { ShadowLog } from '../observability/shadow-log.js';
import type { RequestState } from './request-state.js';
import { bytesSinceLastRequest } from './connection-bytes.js';

export type AccessLog = (wx: RequestState, method: string, status: number, finished: boolean) => void;

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
    const bytes = bytesSinceLastRequest(wx.socket);
    routeMetrics.bytesIn.inc(bytes.in);
    routeMetrics.bytesOut.inc(bytes.out);
    routeMetrics.duration.observe(totalMs / 1000);
    if (wx.upstreamMs !== undefined) routeMetrics.upstreamDuration.observe(wx.upstreamMs / 1000);
    // Only routes with a rule in report mode have any.
    const shadow = wx.shadow === undefined && wx.maskReport === undefined ? undefined : shadowLog.record(wx);
    access.info(
      {
        request_id: wx.id,
        route: wx.route,
        method,
        // Paths and queries carry personal data too (`/users/13812345678?phone=...`).
        path: wx.path === undefined ? undefined : redactor.path(wx.path),
        query: wx.query === undefined ? undefined : redactor.query(wx.query),
        status,
        reason: wx.reason,
        // The profile's name only: which view of the data this caller was given.
        mask: wx.mask,
        shadow,
        client_ip: wx.address.client,
        upstream_ms: wx.upstreamMs === undefined ? undefined : round(wx.upstreamMs),
        total_ms: round(totalMs),
      },
      'request',
    );
  };
}
