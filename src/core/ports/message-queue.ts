/** A named message queue. */
export interface MessageQueueInfo {
  name: string;
  createdAt: Date;
}

/** A queue's figures at one moment. */
export interface MessageQueueStats {
  name: string;
  /** Messages visible, waiting to be received. */
  depth: number;
  /** Messages received whose visibility timeout has not run out, not yet acknowledged or released. */
  inFlight: number;
  /** When the oldest message still in the queue (waiting or in flight) was sent; null when it is empty. */
  oldestSentAt: Date | null;
}

/** One message handed out by `receive`. */
export interface ReceivedMessage {
  /** Time-ordered UUID given when it was sent. */
  messageId: string;
  body: string;
  /** 1 for the first receive; each later receive (after a release or a visibility timeout) adds one. */
  receiveCount: number;
  sentAt: Date;
  firstReceivedAt: Date;
  /** Names this receive: `ack` and `release` take it. The next receive of the message gets a new one. */
  receipt: string;
}

/** What `receive` takes. */
export interface MessageReceiveOptions {
  /** At most this many messages (1..`maxMessagesPerCall`). */
  max: number;
  /** Each message is hidden from other receivers this long (ms, > 0); neither acked nor released by then, it is visible again. */
  visibilityMs: number;
}

/**
 * Named message queues: producers send bodies to a queue created beforehand; consumers receive, then acknowledge
 * (delete) or release each message.
 *
 * Delivery is **at least once**: a message received and not acknowledged before its visibility timeout ends becomes
 * visible again and is received again (receive count + 1, new receipt), so a consumer that dies loses nothing, but a
 * slow one may see a message twice. Messages are received oldest visible first, with no stricter FIFO promise.
 *
 * Input errors: BAD_REQUEST for a bad queue name, an empty batch or one of more than `maxMessagesPerCall`, a body
 * that is not a string or holds a character outside the allowed set (the message index named), `max` or
 * `visibilityMs` out of range; PAYLOAD_TOO_LARGE for a body over `maxMessageBodyBytes` (the index named); NOT_FOUND
 * for a queue that does not exist (queues are created explicitly). A bad batch sends nothing.
 */
export interface MessageQueues {
  /** Idempotent: `created` is false when the queue existed already. */
  createQueue(name: string): Promise<{ queue: MessageQueueInfo; created: boolean }>;
  getQueue(name: string): Promise<MessageQueueInfo | null>;
  /** Sorted by name. */
  listQueues(): Promise<MessageQueueInfo[]>;
  /**
   * Deletes the queue and its messages; false when it did not exist. Where triggers are stored beside the queues,
   * throws CONFLICT while a trigger reads from the queue or dead-letters into it.
   */
  deleteQueue(name: string): Promise<boolean>;
  /** Sends the bodies, all or none; their message ids, in order. */
  send(queue: string, bodies: readonly string[]): Promise<string[]>;
  /** Takes up to `max` visible messages, oldest first, each hidden for `visibilityMs`; empty when none is visible. */
  receive(queue: string, options: MessageReceiveOptions): Promise<ReceivedMessage[]>;
  /** Deletes the messages the receipts name; a receipt no longer current (received again since) is skipped. Returns how many were deleted. */
  ack(queue: string, receipts: readonly string[]): Promise<number>;
  /** Makes the messages the receipts name visible again now; a receipt no longer current is skipped. Returns how many. */
  release(queue: string, receipts: readonly string[]): Promise<number>;
  stats(queue: string): Promise<MessageQueueStats>;
  /** Every queue's figures, sorted by name. */
  listStats(): Promise<MessageQueueStats[]>;
  /** Deletes every message of the queue, in flight or not; returns how many. */
  purge(queue: string): Promise<number>;
  /** Idempotent; calls after it fail with UNAVAILABLE. */
  close(): Promise<void>;
}

/** The most messages one `send` or `receive` takes. */
export const maxMessagesPerCall = 100;
/** The largest message body: 256 KiB of UTF-8. */
export const maxMessageBodyBytes = 256 * 1024;
/** The longest queue name. */
export const maxQueueNameLength = 80;
