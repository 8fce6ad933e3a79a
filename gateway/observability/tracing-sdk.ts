// The OpenTelemetry SDK's side of tracing, loaded only when a policy has a `tracing` section
// (tracing.ts): a tracer whose spans are batched and sent over OTLP/HTTP (JSON) to the policy's
// collector. Nothing is registered globally: the gateway hands its tracer to the proxy itself, so
// no other code's spans or context managers get involved.
//
// The exporter never holds a request up: span.end() only queues, a bounded queue drops spans
// when the collector cannot keep up, and export failures are logged at most once a minute.
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../types/policy.js';
import type { Logger } from './logger.js';
import type { ActiveTracing } from './tracing.js';

const propagator = new W3CTraceContextPropagator();

/** Spans held for export at most; past it new spans are dropped, never waited for. */
const MAX_QUEUE = 2048;
const BATCH = 512;
const EXPORT_EVERY_MS = 1000;
const EXPORT_TIMEOUT_MS = 10_000;
/** At most one line about failing exports per this many milliseconds. */
const COMPLAIN_EVERY_MS = 60_000;

/** Passes spans on to the OTLP exporter, and says when exports fail without a line per batch. */
export class LoggedExporter implements SpanExporter {
  private failedBatches = 0;
  private lastComplaint = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly inner: SpanExporter,
    private readonly endpoint: string,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.failed(result.error, spans.length);
      done(result);
    });
  }

  private failed(err: Error | undefined, spans: number): void {
    this.failedBatches++;
    const t = this.now();
    if (t - this.lastComplaint < COMPLAIN_EVERY_MS) return;
    this.lastComplaint = t;
    this.logger.warn(
      { endpoint: this.endpoint, why: err?.message ?? 'unknown', spans, failed_batches: this.failedBatches },
      'trace export failed; spans are dropped until the collector answers (logged at most once a minute)',
    );
    this.failedBatches = 0;
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

export interface Running extends ActiveTracing {
  readonly provider: TracerProvider;
  /** The section it was built from, for telling a changed section from a reloaded same one. */
  readonly key: string;
}

export function keyOf(config: TracingConfig): string {
  const { pos: _pos, ...rest } = config;
  return JSON.stringify(rest);
}

export function start(config: TracingConfig, logger: Logger, now: () => number): Running {
  const exporter = new OTLPTraceExporter({ url: config.otlp_endpoint, headers: { ...config.headers }, timeoutMillis: EXPORT_TIMEOUT_MS });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.service_name }),
    // A trusted parent's decision stands; a new trace is recorded at the policy's ratio.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sample_ratio) }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new LoggedExporter(exporter, config.otlp_endpoint, logger, now),
        maxQueueSize: MAX_QUEUE,
        maxExportBatchSize: BATCH,
        scheduledDelayMillis: EXPORT_EVERY_MS,
        exportTimeoutMillis: EXPORT_TIMEOUT_MS,
      }),
    ],
  });
  return { provider, tracer: provider.getTracer('wxgw'), propagator, trustIncoming: config.trust_incoming, key: keyOf(config) };
}
