import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OtelTracer } from './otel-tracer.js';

const traceId = '5759e988bd862e3fe1be46a994272793';
const spanId = '53995c3f42cd8ad8';
const traceparent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

function parts(value: string): { trace: string; span: string; flags: string } {
  const [, trace = '', span = '', flags = ''] = traceparent.exec(value) ?? [];
  return { trace, span, flags };
}

// Sampled-out spans are never exported, so these tracers write nothing anywhere.
describe('OtelTracer', () => {
  const followParent = new OtelTracer({
    exporter: 'console',
    sampler: 'parentbased_always_off',
    ratio: 1,
    serviceName: 'test',
  });
  const none = new OtelTracer({ exporter: 'console', sampler: 'always_off', ratio: 1, serviceName: 'test' });

  after(async () => {
    await Promise.all([followParent.shutdown(), none.shutdown(), none.shutdown()]);
  });

  it('continues a traceparent: same trace, a span of its own, the sampling decision of its sampler', () => {
    const span = none.startSpan('s', { kind: 'server', parent: `00-${traceId}-${spanId}-01` });
    const { trace, span: id, flags } = parts(span.traceparent);
    assert.equal(trace, traceId);
    assert.notEqual(id, spanId);
    assert.equal(flags, '00');
    span.end();
    span.end();
  });

  it('follows an unsampled parent under a parent-based sampler, and passes the trace on to children', () => {
    const parent = followParent.startSpan('p', { kind: 'server', parent: `00-${traceId}-${spanId}-00` });
    const child = followParent.startSpan('c', { kind: 'internal', parent });
    assert.equal(parts(child.traceparent).trace, traceId);
    assert.equal(parts(child.traceparent).flags, '00');
  });

  it('passes an unsampled parent on as it is under a parent-based sampler', () => {
    const unsampled = `00-${traceId}-${spanId}-00`;
    const span = followParent.startSpan('s', { kind: 'server', parent: unsampled });
    assert.equal(span.recording, false);
    assert.equal(span.traceparent, unsampled);
    assert.equal(followParent.startSpan('c', { kind: 'internal', parent: span }).traceparent, unsampled);
    // Not a valid context (all-zero trace id): a new trace, as the W3C rules say.
    const zero = followParent.startSpan('z', { kind: 'server', parent: `00-${'0'.repeat(32)}-${spanId}-00` });
    assert.notEqual(parts(zero.traceparent).trace, '0'.repeat(32));
  });

  it('starts a new trace for a missing or malformed parent', () => {
    for (const parent of [undefined, '', 'garbage', `01-${traceId}`]) {
      const { trace } = parts(none.startSpan('s', { kind: 'server', parent }).traceparent);
      assert.match(trace, /^[0-9a-f]{32}$/);
      assert.notEqual(trace, traceId);
    }
  });
});
