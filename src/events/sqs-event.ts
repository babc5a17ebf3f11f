import { createHash } from 'node:crypto';
import type { ReceivedMessage } from '../core/ports/message-queue.js';

/** The region named in records: the platform has one. */
export const queueEventRegion = 'local';

/** One record of the event a queue trigger hands its function: the shape of an SQS event source's record. */
export interface QueueEventRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: {
    ApproximateReceiveCount: string;
    SentTimestamp: string;
    ApproximateFirstReceiveTimestamp: string;
  };
  messageAttributes: Record<string, never>;
  md5OfBody: string;
  eventSource: 'savassan:queue';
  eventSourceARN: string;
  awsRegion: string;
}

/** `arn:savassan:sqs:local:000000000000:QUEUE`: the queue name where SQS code looks for it (the sixth field). */
export function queueArn(queue: string): string {
  return `arn:savassan:sqs:${queueEventRegion}:000000000000:${queue}`;
}

/** A received message as its event record. */
export function queueEventRecord(queue: string, message: ReceivedMessage): QueueEventRecord {
  return {
    messageId: message.messageId,
    receiptHandle: message.receipt,
    body: message.body,
    attributes: {
      ApproximateReceiveCount: String(message.receiveCount),
      SentTimestamp: String(message.sentAt.getTime()),
      ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt.getTime()),
    },
    messageAttributes: {},
    md5OfBody: createHash('md5').update(message.body).digest('hex'),
    eventSource: 'savassan:queue',
    eventSourceARN: queueArn(queue),
    awsRegion: queueEventRegion,
  };
}

/**
 * Which messages of a batch the handler reported failed, from its result's JSON: `{"batchItemFailures":
 * [{"itemIdentifier": MESSAGE_ID}, …]}` (the SQS partial batch response). Any other result is a success of the whole
 * batch; a failure list that is not an array, or names a message not in the batch, fails the whole batch (as with
 * SQS), answered `'all'`.
 */
export function failedItems(resultJson: Uint8Array | undefined, batchIds: ReadonlySet<string>): Set<string> | 'all' {
  if (resultJson === undefined) return new Set();
  let result: unknown;
  try {
    result = JSON.parse(Buffer.from(resultJson.buffer, resultJson.byteOffset, resultJson.byteLength).toString('utf8'));
  } catch {
    return new Set();
  }
  if (typeof result !== 'object' || result === null || !('batchItemFailures' in result)) return new Set();
  const failures = result.batchItemFailures;
  if (failures === null || failures === undefined) return new Set();
  if (!Array.isArray(failures)) return 'all';
  const failed = new Set<string>();
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || !batchIds.has(id)) return 'all';
    failed.add(id);
  }
  return failed;
}
