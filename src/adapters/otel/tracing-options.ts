// Tracing configuration from OpenTelemetry's standard environment variables, validated once at startup. Pure: this
// file imports no OpenTelemetry package, so reading the variables costs nothing when tracing is off.
import { PlatformError } from '../../core/errors.js';

export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

const samplerNames: readonly SamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

export interface TracingOptions {
  /** `otlp`: OTLP over HTTP (JSON) to the configured endpoint; `console`: spans printed to stdout (debugging). */
  exporter: 'otlp' | 'console';
  sampler: SamplerName;
  /** The ratio of the `traceidratio` samplers, 0..1. */
  ratio: number;
  serviceName: string;
}

/** The variables read; others (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`...) the OpenTelemetry SDK reads itself. */
type TracingEnv = Readonly<Record<string, string | undefined>>;

/**
 * The tracing options the environment configures, or null when tracing is off: `OTEL_SDK_DISABLED=true`,
 * `OTEL_TRACES_EXPORTER=none`, or neither an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) nor an explicit exporter. Throws INVALID_CONFIG, naming the variable, for
 * a value it cannot use (an unknown sampler or exporter, a ratio that is not a number in 0..1).
 */
export function tracingOptionsFromEnv(env: TracingEnv, defaultServiceName: string): TracingOptions | null {
  if (value(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return null;
  const exporterList = value(env, 'OTEL_TRACES_EXPORTER');
  let exporter: TracingOptions['exporter'];
  if (exporterList === undefined) {
    const endpoint = value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
    if (endpoint === undefined) return null;
    exporter = 'otlp';
  } else {
    const names = exporterList.split(',').map((name) => name.trim().toLowerCase());
    if (names.includes('none')) return null;
    const known = names.filter((name): name is TracingOptions['exporter'] => name === 'otlp' || name === 'console');
    if (known.length !== names.length || known.length !== 1) {
      throw invalid('OTEL_TRACES_EXPORTER', exporterList, 'one of otlp, console, none');
    }
    exporter = known[0] ?? 'otlp';
  }

  const samplerText = value(env, 'OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on';
  const sampler = samplerNames.find((name) => name === samplerText);
  if (sampler === undefined) throw invalid('OTEL_TRACES_SAMPLER', samplerText, samplerNames.join(', '));
  let ratio = 1;
  const arg = value(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (sampler.endsWith('traceidratio') && arg !== undefined) {
    ratio = /^\s*(?:\d+(?:\.\d*)?|\.\d+)(?:e-?\d+)?\s*$/i.test(arg) ? Number(arg) : Number.NaN;
    if (!(ratio >= 0 && ratio <= 1)) throw invalid('OTEL_TRACES_SAMPLER_ARG', arg, 'a number from 0 to 1');
  }
  return { exporter, sampler, ratio, serviceName: value(env, 'OTEL_SERVICE_NAME') ?? defaultServiceName };
}

/** A variable's value, with an empty one taken as unset (as the OpenTelemetry specification asks). */
function value(env: TracingEnv, name: string): string | undefined {
  const text = env[name]?.trim();
  return text === undefined || text === '' ? undefined : text;
}

function invalid(name: string, got: string, expected: string): PlatformError {
  return new PlatformError('INVALID_CONFIG', `${name}=${JSON.stringify(got)} is not valid: expected ${expected}`);
}
