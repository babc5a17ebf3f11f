import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { tracingOptionsFromEnv } from './tracing-options.js';

const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };

describe('tracingOptionsFromEnv', () => {
  it('is off unless an endpoint or an exporter is configured', () => {
    assert.equal(tracingOptionsFromEnv({}, 'savassan'), null);
    assert.equal(tracingOptionsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }, 'savassan'), null);
    assert.equal(tracingOptionsFromEnv({ OTEL_TRACES_SAMPLER: 'always_on' }, 'savassan'), null);
  });

  it('is off when disabled or when the exporter is none', () => {
    assert.equal(tracingOptionsFromEnv({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' }, 'savassan'), null);
    assert.equal(tracingOptionsFromEnv({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }, 'savassan'), null);
  });

  it('defaults to OTLP, parent-based always-on sampling, the given service name', () => {
    assert.deepEqual(tracingOptionsFromEnv(endpoint, 'savassan-agent'), {
      exporter: 'otlp',
      sampler: 'parentbased_always_on',
      ratio: 1,
      serviceName: 'savassan-agent',
    });
    assert.equal(
      tracingOptionsFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }, 's')?.exporter,
      'otlp',
    );
  });

  it('reads the sampler, its ratio, the exporter and the service name', () => {
    assert.deepEqual(
      tracingOptionsFromEnv(
        {
          OTEL_TRACES_EXPORTER: 'console',
          OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
          OTEL_TRACES_SAMPLER_ARG: '0.01',
          OTEL_SERVICE_NAME: 'edge',
        },
        'savassan',
      ),
      { exporter: 'console', sampler: 'parentbased_traceidratio', ratio: 0.01, serviceName: 'edge' },
    );
  });

  it('refuses values it cannot use, naming the variable', () => {
    for (const [env, variable] of [
      [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'abc' }, 'OTEL_TRACES_SAMPLER_ARG'],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '-0.1' }, 'OTEL_TRACES_SAMPLER_ARG'],
      [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
      [{ OTEL_TRACES_EXPORTER: 'otlp,console' }, 'OTEL_TRACES_EXPORTER'],
    ] as const) {
      assert.throws(
        () => tracingOptionsFromEnv({ ...endpoint, ...env }, 'savassan'),
        (err: unknown) => isPlatformError(err, 'INVALID_CONFIG') && err.message.includes(variable),
        variable,
      );
    }
  });
});
