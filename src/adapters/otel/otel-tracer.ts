// The Tracer port on the OpenTelemetry SDK: a tracer provider of its own (never registered as the process's global
// one: several servers can share a process), a batch span processor, and OTLP over HTTP (JSON) or the console.
// Loaded only when tracing is configured (see `createTracer`).
import {
  ROOT_CONTEXT,
  SpanKind as OtelSpanKind,
  SpanStatusCode,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
  type Tracer as ApiTracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { envDetector, detectResources, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';
import type { SpanOptions, TraceSpan, Tracer } from '../../core/ports/tracer.js';
import type { TracingOptions } from './tracing-options.js';

const kinds = {
  server: OtelSpanKind.SERVER,
  client: OtelSpanKind.CLIENT,
  internal: OtelSpanKind.INTERNAL,
} as const;

const propagator = new W3CTraceContextPropagator();
const getter = {
  get: (carrier: { traceparent: string }, key: string) => (key === 'traceparent' ? carrier.traceparent : undefined),
  keys: () => ['traceparent'],
};

class OtelSpan implements TraceSpan {
  #traceparent: string | null = null;
  #ended = false;

  readonly recording: boolean;

  constructor(readonly span: Span) {
    this.recording = span.isRecording();
  }

  get traceparent(): string {
    if (this.#traceparent === null) {
      const context = this.span.spanContext();
      this.#traceparent = isSpanContextValid(context)
        ? `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`
        : '';
    }
    return this.#traceparent;
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  fail(message: string): void {
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.span.end();
  }
}

/**
 * A span a parent-based sampler is sure to leave out (its parent is not sampled): nothing is made, and its context is
 * the parent's, passed on as it is. Saves the parent's extraction and a span's ids on every unsampled invocation.
 */
class PassedOnSpan implements TraceSpan {
  readonly recording = false;

  constructor(readonly traceparent: string) {}

  setAttribute(): void {}
  fail(): void {}
  end(): void {}
}

const unsampledTraceparent = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f][02468ace]$/;

function samplerOf(options: TracingOptions): Sampler {
  switch (options.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(options.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.ratio) });
  }
}

export class OtelTracer implements Tracer {
  readonly enabled = true;
  readonly #provider: BasicTracerProvider;
  readonly #tracer: ApiTracer;
  /** Whether the sampler follows a parent's decision (the `parentbased_*` ones). */
  readonly #followsParent: boolean;
  #shutdown: Promise<void> | null = null;

  constructor(options: TracingOptions) {
    const resource = detectResources({ detectors: [envDetector] }).merge(
      resourceFromAttributes({ 'service.name': options.serviceName }),
    );
    // The endpoint, headers and timeouts come from the OTEL_EXPORTER_OTLP_* variables, read by the exporter.
    const exporter = options.exporter === 'console' ? new ConsoleSpanExporter() : new OTLPTraceExporter();
    this.#provider = new BasicTracerProvider({
      resource,
      sampler: samplerOf(options),
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    this.#tracer = this.#provider.getTracer('savassan');
    this.#followsParent = options.sampler.startsWith('parentbased_');
  }

  startSpan(name: string, options: SpanOptions): TraceSpan {
    const { parent } = options;
    if (this.#followsParent && parent !== undefined) {
      if (
        typeof parent === 'string' ? unsampledTraceparent.test(parent) : !parent.recording && parent.traceparent !== ''
      ) {
        return new PassedOnSpan(typeof parent === 'string' ? parent : parent.traceparent);
      }
    }
    const span = this.#tracer.startSpan(
      name,
      { kind: kinds[options.kind], attributes: options.attributes },
      parentContext(options.parent),
    );
    return new OtelSpan(span);
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.#provider.shutdown();
    return this.#shutdown;
  }
}

function parentContext(parent: SpanOptions['parent']): Context {
  if (parent === undefined || parent === '') return ROOT_CONTEXT;
  if (typeof parent === 'string') return propagator.extract(ROOT_CONTEXT, { traceparent: parent }, getter);
  if (parent instanceof OtelSpan) return trace.setSpan(ROOT_CONTEXT, parent.span);
  return parent.traceparent === '' ? ROOT_CONTEXT : parentContext(parent.traceparent);
}
