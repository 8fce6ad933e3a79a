// Tracing as the gateway sees it: the tracer for the policy in force, or none. The OpenTelemetry
// SDK and its exporter (tracing-sdk.ts) are loaded only once a policy has a `tracing` section, so
// a gateway that does not trace never loads them.
//
// A reload applies a changed `tracing` section: the first request under the new policy builds
// the new exporter and the old one is flushed and shut down behind it. A section that appears on
// a reload takes effect once the SDK has loaded, a few requests later.
import type { TextMapPropagator, Tracer } from '@opentelemetry/api';
import type { TracingConfig } from '../types/policy.js';
import type { Logger } from './logger.js';

/** What a request needs to trace itself under the policy in force. */
export interface ActiveTracing {
  readonly tracer: Tracer;
  /** W3C trace context (traceparent, tracestate). */
  readonly propagator: TextMapPropagator;
  /** `tracing.trust_incoming`: a trusted proxy's traceparent is the parent. */
  readonly trustIncoming: boolean;
}

type Sdk = typeof import('./tracing-sdk.js');
type Running = import('./tracing-sdk.js').Running;

export class Tracing {
  /** The section last looked at; `null` before the first. */
  private seen: TracingConfig | undefined | null = null;
  private running: Running | undefined;
  private sdk: Sdk | undefined;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads the SDK when `config` asks for tracing, so that requests are traced from the first (start). */
  async prepare(config: TracingConfig | undefined): Promise<void> {
    if (config) await this.load();
    this.for(config);
  }

  private load(): Promise<void> {
    this.loading ??= import('./tracing-sdk.js').then(
      (sdk) => {
        this.sdk = sdk;
      },
      (err: unknown) => this.logger.error({ err }, 'the OpenTelemetry SDK could not be loaded; requests are not traced'),
    );
    return this.loading;
  }

  /**
   * The tracer for a policy's `tracing` section, undefined when it has none. Called per request:
   * the same section as last time costs one comparison; a reload's equal section keeps the
   * exporter, a changed one replaces it.
   */
  for(config: TracingConfig | undefined): ActiveTracing | undefined {
    if (config === this.seen) return this.running;
    const sdk = this.sdk;
    if (config && !sdk) {
      // Turned on by a reload: untraced until the SDK is in, then this runs again.
      void this.load();
      return undefined;
    }
    this.seen = config;
    if (config && this.running?.key === sdk!.keyOf(config)) return this.running;
    const previous = this.running;
    this.running = undefined;
    if (config) {
      // Called while a request is being handled: a tracer that cannot be built turns tracing off, never the request.
      try {
        this.running = sdk!.start(config, this.logger, this.now);
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
