/** A queue trigger: runs a function with batches of a queue's messages (see `TriggerRunner`). */
export interface QueueTrigger {
  /** 16 hex digits. */
  id: string;
  functionName: string;
  queue: string;
  /** Messages per invocation at most (1..100). */
  batchSize: number;
  /** How long a batch gathers messages before it runs short of `batchSize` (0..300 s). */
  windowSeconds: number;
  /** Batches of this trigger running at once, per gateway (1..100). */
  maxConcurrency: number;
  /** Receives a message may have; the next moves it to the dead-letter queue, or drops it (1..100). */
  maxReceives: number;
  /** Where messages received more than `maxReceives` times go; null drops them (logged). */
  deadLetterQueue: string | null;
  createdAt: Date;
}

/** A trigger as asked for: settings left out take `triggerSettingLimits`' defaults. */
export interface NewTrigger {
  functionName: string;
  queue: string;
  batchSize?: number | undefined;
  windowSeconds?: number | undefined;
  maxConcurrency?: number | undefined;
  maxReceives?: number | undefined;
  deadLetterQueue?: string | null | undefined;
}

/**
 * Queue triggers, stored beside the queues and functions they name. `create` throws NOT_FOUND naming the function,
 * queue or dead-letter queue that does not exist, BAD_REQUEST for a setting out of range or a dead-letter queue that
 * is the queue itself, CONFLICT when the function has a trigger on the queue already. A trigger goes with its
 * function when the function is deleted; a queue cannot be deleted while a trigger names it.
 */
export interface TriggerStore {
  create(input: NewTrigger): Promise<QueueTrigger>;
  get(id: string): Promise<QueueTrigger | null>;
  /** Oldest first. */
  list(): Promise<QueueTrigger[]>;
  /** False when it did not exist. */
  delete(id: string): Promise<boolean>;
}
