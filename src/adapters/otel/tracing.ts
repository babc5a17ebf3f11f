import type { Tracer } from '../../core/ports/tracer.js';
import { noopTracer } from '../../core/ports/tracer.js';
import { tracingOptionsFromEnv } from './tracing-options.js';

/**
 * The process's tracer: OpenTelemetry's when the standard variables configure tracing (see `tracingOptionsFromEnv`),
 * loaded only then; the no-op tracer otherwise. Throws INVALID_CONFIG for a variable it cannot use, so a bad value
 * stops the process at startup instead of silently tracing nothing.
 */
export async function createTracer(
  env: Readonly<Record<string, string | undefined>>,
  defaultServiceName: string,
): Promise<Tracer> {
  const options = tracingOptionsFromEnv(env, defaultServiceName);
  if (options === null) return noopTracer;
  const { OtelTracer } = await import('./otel-tracer.js');
  return new OtelTracer(options);
}
