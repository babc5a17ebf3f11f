import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isPlatformError } from '../core/errors.js';
import type { SerializedError } from '../core/types.js';
import type { ControlChange } from '../control-plane/control-state.js';
import {
  failureFromProto,
  failureToProto,
  followEventFromProto,
  followEventToProto,
  jsonFromBytes,
  jsonToBytes,
  maxControlJsonBytes,
  provisionRequestFromProto,
  provisionRequestToProto,
} from './leader-codec.js';

it('carries a provisioning failure whole: name, code, message and stack', () => {
  const failures: SerializedError[] = [
    { name: 'PlatformError', code: 'FUNCTION_INIT_ERROR', message: 'boom' },
    { name: 'Error', message: 'no code' },
    { name: 'TypeError', code: 'INTERNAL', message: 'x', stack: 'TypeError: x\n    at f' },
  ];
  for (const failure of failures) assert.deepEqual(failureFromProto(failureToProto(failure)), failure);
  assert.deepEqual(failureFromProto({ code: '', message: 'bare', detailsJson: '' }), {
    name: 'Error',
    message: 'bare',
  });
});

it('carries a provisioning request with and without a traceparent, and refuses an unknown reason', () => {
  const request = {
    functionName: 'fn',
    incarnation: 'i1',
    version: 3,
    reason: 'min-instances' as const,
    requestedAt: 7,
  };
  assert.deepEqual(provisionRequestFromProto(provisionRequestToProto(request)), request);
  const traced = { ...request, traceparent: '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01' };
  assert.deepEqual(provisionRequestFromProto(provisionRequestToProto(traced)), traced);
  assert.throws(
    () => provisionRequestFromProto({ ...provisionRequestToProto(request), reason: 'whim' }),
    (err) => isPlatformError(err, 'BAD_REQUEST'),
  );
});

it('refuses JSON over the size one message carries, or not JSON, with BAD_REQUEST', () => {
  const big = 'x'.repeat(maxControlJsonBytes);
  assert.throws(
    () => jsonToBytes({ big }, 'a control snapshot'),
    (err) => isPlatformError(err, 'BAD_REQUEST') && /a control snapshot is \d+ bytes of JSON/.test(err.rawMessage),
  );
  assert.throws(
    () => jsonFromBytes(Buffer.alloc(maxControlJsonBytes + 1, 0x20), 'a control snapshot'),
    (err) => isPlatformError(err, 'BAD_REQUEST'),
  );
  assert.throws(
    () => jsonFromBytes(Buffer.from('{not json'), 'a view'),
    (err) => isPlatformError(err, 'BAD_REQUEST') && /a view on the wire is not JSON/.test(err.rawMessage),
  );
  assert.deepEqual(jsonFromBytes(jsonToBytes({ a: [1, 'b'] }, 'x'), 'x'), { a: [1, 'b'] });
});

it('splits a batch of changes into messages that fit, their sequence numbers following on', () => {
  // Each change about a third of a message: three messages for seven changes.
  const filler = 'y'.repeat(Math.floor(maxControlJsonBytes / 3) - 200);
  const changes: ControlChange[] = Array.from({ length: 7 }, (_, n) => ({
    upgrade: {
      target: `${n}${filler}`,
      to: { version: '0.2.0', build: 'B', protocol: 1 },
      from: [],
      state: 'running',
      step: 'start',
      started: [],
      retired: [],
      toRetire: [],
      startedAt: 0,
      updatedAt: 0,
    },
  }));
  const messages = followEventToProto({ firstSeq: 10, changes });
  assert.ok(messages.length >= 3, `${messages.length} messages`);
  const events = messages.map(followEventFromProto);
  let seq = 10;
  const received: ControlChange[] = [];
  for (const event of events) {
    assert.ok('firstSeq' in event);
    assert.equal(event.firstSeq, seq);
    seq += event.changes.length;
    received.push(...event.changes);
  }
  assert.deepEqual(received, changes);
});
