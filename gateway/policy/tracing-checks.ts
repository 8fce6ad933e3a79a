// `tracing`: an endpoint the exporter can actually post to, and credentials kept out of its URL.
import { redactUrl } from './addresses.js';
import { isRecord } from './key-path.js';
import { show, type Reporter } from './report.js';

export function checkTracing(data: Record<string, unknown>, report: Reporter): void {
  const tracing = data.tracing;
  if (!isRecord(tracing) || typeof tracing.otlp_endpoint !== 'string') return;
  const at = ['tracing', 'otlp_endpoint'];
  let url: URL;
  try {
    url = new URL(tracing.otlp_endpoint);
  } catch {
    report.error(at, `${show(redactUrl(tracing.otlp_endpoint))} is not a URL; write one such as http://collector:4318/v1/traces`);
    return;
  }
  if (url.username !== '' || url.password !== '') {
    report.error(at, 'carries credentials, which would be sent and logged with the URL; put a token in tracing.headers (a secret: ${ENV_VAR}) instead');
  }
}
