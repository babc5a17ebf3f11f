import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { failedItems, queueEventRecord } from './sqs-event.js';

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const ids = new Set(['a', 'b', 'c']);

describe('queue event records', () => {
  it('have the SQS record shape, strings for the attributes and the md5 of the body', () => {
    const record = queueEventRecord('orders', {
      messageId: 'm1',
      body: 'hello',
      receiveCount: 2,
      sentAt: new Date(1000),
      firstReceivedAt: new Date(2000),
      receipt: 'r1',
    });
    assert.deepEqual(record, {
      messageId: 'm1',
      receiptHandle: 'r1',
      body: 'hello',
      attributes: { ApproximateReceiveCount: '2', SentTimestamp: '1000', ApproximateFirstReceiveTimestamp: '2000' },
      messageAttributes: {},
      md5OfBody: '5d41402abc4b2a76b9719d911017c592',
      eventSource: 'savassan:queue',
      eventSourceARN: 'arn:savassan:sqs:local:000000000000:orders',
      awsRegion: 'local',
    });
    assert.equal(record.eventSourceARN.split(':')[5], 'orders');
  });
});

describe('failedItems', () => {
  it('reads a partial batch response', () => {
    assert.deepEqual(failedItems(bytes({ batchItemFailures: [{ itemIdentifier: 'b' }] }), ids), new Set(['b']));
    assert.deepEqual(failedItems(bytes({ batchItemFailures: [] }), ids), new Set());
  });

  it('takes any other result as success of the whole batch', () => {
    for (const result of [null, 'ok', 42, { done: true }, { batchItemFailures: null }]) {
      assert.deepEqual(failedItems(bytes(result), ids), new Set(), JSON.stringify(result));
    }
    assert.deepEqual(failedItems(undefined, ids), new Set());
  });

  it('fails the whole batch for a malformed failure list or an unknown id', () => {
    for (const failures of ['b', [{ itemIdentifier: 'zzz' }], [{ id: 'a' }], [null], [{ itemIdentifier: 1 }]]) {
      assert.equal(failedItems(bytes({ batchItemFailures: failures }), ids), 'all', JSON.stringify(failures));
    }
  });
});
