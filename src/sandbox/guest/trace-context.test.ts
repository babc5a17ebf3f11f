import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { traceContextOf } from './trace-context.js';

describe('traceContextOf', () => {
  it('gives the X-Ray form of a sampled traceparent', () => {
    const traceparent = '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01';
    assert.deepEqual(traceContextOf(traceparent), {
      traceparent,
      xrayTraceId: 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1',
    });
  });

  it('marks an unsampled one Sampled=0', () => {
    const context = traceContextOf('00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00');
    assert.match(context?.xrayTraceId ?? '', /;Sampled=0$/);
  });

  it('refuses what is not a valid traceparent', () => {
    for (const value of [
      '',
      'garbage',
      '00-00000000000000000000000000000000-53995c3f42cd8ad8-01',
      '00-5759e988bd862e3fe1be46a994272793-0000000000000000-01',
      'ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01',
      '00-5759E988BD862E3FE1BE46A994272793-53995c3f42cd8ad8-01',
    ]) {
      assert.equal(traceContextOf(value), null, value);
    }
  });
});
