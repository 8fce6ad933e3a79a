// The OpenTelemetry side of tracing: a tracer whose spans are batched and sent over OTLP/HTTP
// (JSON) to the policy's collector. Nothing here is registered globally: the gateway hands its
// tracer to the proxy itself, so no other code's spans or context managers get involved.
//
// The exporter never holds a request up: span.end() only queues, a bounded queue drops spans
// when the collector cannot keep up, and export failures are logged at most once a minute.
//
// A reload applies a changed `tracing` section: the first request under the new policy builds
// the new exporter and the old one is flushed and shut down behind it.
import type { Tracer } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../types/policy.js';
import type { Logger } from './logger.js';

/** What a request needs to trace itself under the policy in force. */
export interface ActiveTracing {
  readonly tracer: Tracer;
  /** `tracing.trust_incoming`: a trusted proxy's traceparent is the parent. */
  readonly trustIncoming: boolean;
}

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

interface Running extends ActiveTracing {
  readonly provider: TracerProvider;
  /** The section it was built from, for telling a changed section from a reloaded same one. */
  readonly key: string;
}

function keyOf(config: TracingConfig): string {
  const { pos: _pos, ...rest } = config;
  return JSON.stringify(rest);
}

function start(config: TracingConfig, logger: Logger, now: () => number): Running {
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
  return { provider, tracer: provider.getTracer('wxgw'), trustIncoming: config.trust_incoming, key: keyOf(config) };
}

export class Tracing {
  /** The section last looked at; `null` before the first. */
  private seen: TracingConfig | undefined | null = null;
  private running: Running | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The tracer for a policy's `tracing` section, undefined when it has none. Called per request:
   * the same section as last time costs one comparison; a reload's equal section keeps the
   * exporter, a changed one replaces it.
   */
  for(config: TracingConfig | undefined): ActiveTracing | undefined {
    if (config === this.seen) return this.running;
    this.seen = config;
    if (config !== undefined && this.running?.key === keyOf(config)) return this.running;
    const previous = this.running;
    this.running = undefined;
    if (config) {
      // Called while a request is being handled: a tracer that cannot be built turns tracing off, never the request.
      try {
        this.running = start(config, this.logger, this.now);
        this.logger.info({ endpoint: config.otlp_endpoint, sample_ratio: config.sample_ratio }, 'tracing on: spans exported over OTLP/HTTP');
      } catch (err) {
        this.logger.error({ err, endpoint: config.otlp_endpoint }, 'tracing could not start; requests are not traced under this policy');
      }
    } else if (previous) this.logger.info('tracing off');
    if (previous) this.stop(previous);
    return this.running;
  }

  private stop(running: Running): void {
    running.provider.shutdown().catch((err: unknown) => this.logger.warn({ err }, 'flushing the previous trace exporter failed'));
  }

  /** Sends what is queued and stops exporting (graceful shutdown). */
  async close(): Promise<void> {
    const running = this.running;
    // `seen` stays: a request still arriving under the same policy finds tracing off, not restarted.
    this.running = undefined;
    if (!running) return;
    try {
      await running.provider.shutdown();
    } catch (err) {
      this.logger.warn({ err }, 'flushing traces at shutdown failed');
    }
  }
}
