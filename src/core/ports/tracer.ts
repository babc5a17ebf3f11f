/**
 * Traces as the roles see them: start a span (continuing a parent span of this process, or a W3C `traceparent` that
 * came from elsewhere), read its own `traceparent` to pass on, end it. The OpenTelemetry adapter
 * (`adapters/otel`) implements it when tracing is configured; otherwise every role holds `noopTracer`, and the invoke
 * path checks `enabled` before it builds anything, so tracing off costs one property read.
 */
export interface Tracer {
  /** False for the no-op tracer: callers skip span work (and its allocations) altogether. */
  readonly enabled: boolean;
  startSpan(name: string, options: SpanOptions): TraceSpan;
  /** Exports what is buffered and stops. Idempotent. */
  shutdown(): Promise<void>;
}

export type SpanKind = 'server' | 'client' | 'internal';

export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

export interface SpanOptions {
  kind: SpanKind;
  /**
   * The parent: a span of this process, or a W3C `traceparent` header value from another one (an HTTP request, a
   * gRPC message, a queued request). None, or a value that does not parse: the span starts a new trace.
   */
  parent?: TraceSpan | string | undefined;
  attributes?: SpanAttributes | undefined;
}

export interface TraceSpan {
  /**
   * This span as a W3C `traceparent` value (`00-<trace id>-<span id>-<flags>`), for the next hop; the empty string
   * when the span has no valid context (the no-op tracer's).
   */
  readonly traceparent: string;
  /**
   * False for a span the sampler left out (nothing of it is exported): callers may skip making children of it and
   * pass its `traceparent` on instead, which keeps the trace id (and the not-sampled flag) for the next hops.
   */
  readonly recording: boolean;
  setAttribute(key: string, value: string | number | boolean): void;
  /** Marks the span failed (status error), with a short description; never secrets or payloads. */
  fail(message: string): void;
  /** Ends the span. Idempotent. */
  end(): void;
}

const noopSpan: TraceSpan = {
  traceparent: '',
  recording: false,
  setAttribute: () => {},
  fail: () => {},
  end: () => {},
};

/** Tracing off: no spans, nothing exported. */
export const noopTracer: Tracer = {
  enabled: false,
  startSpan: () => noopSpan,
  shutdown: () => Promise.resolve(),
};
