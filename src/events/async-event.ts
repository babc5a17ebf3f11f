import { PlatformError } from '../core/errors.js';
import type { WorkflowNodeRef } from './workflow-node-sink.js';

/** Largest event an asynchronous invocation takes (the body of `invoke?async=1`, a schedule's event). */
export const maxAsyncEventBytes = 1024 * 1024;

/** What an asynchronous invocation carries besides its event: the queue's payload holds both. */
export interface AsyncEventOptions {
  /** The version or alias to run, resolved when each attempt runs (default `live`). */
  qualifier?: string | undefined;
  /** Retries of a function error for this event instead of the function's own setting (a schedule's). */
  retries?: number | undefined;
  /** Maximum event age (seconds) for this event instead of the function's own setting. */
  maxEventAgeSeconds?: number | undefined;
  /** What queued it, for the records: `api`, `schedule:NAME`, `destination:FUNCTION`. */
  source?: string | undefined;
  /** How many destination hops led to it (0 or absent: queued by a caller or a schedule). */
  depth?: number | undefined;
  /** The workflow node attempt this event runs (see `WorkflowNodeSink`), or absent. */
  workflow?: WorkflowNodeRef | undefined;
}

/** An asynchronous invocation's payload, decoded: the event's JSON text and its options. */
export interface AsyncEvent extends AsyncEventOptions {
  eventJson: string;
}

/**
 * The payload an asynchronous invocation is queued with: a JSON envelope around the event, written without parsing
 * the event again (it is valid JSON already). The queue itself keeps payloads opaque.
 */
export function encodeAsyncEvent(eventJson: string, options: AsyncEventOptions = {}): string {
  const fields: string[] = [];
  if (options.qualifier !== undefined) fields.push(`"qualifier":${JSON.stringify(options.qualifier)}`);
  if (options.retries !== undefined) fields.push(`"retries":${options.retries}`);
  if (options.maxEventAgeSeconds !== undefined) fields.push(`"maxEventAgeSeconds":${options.maxEventAgeSeconds}`);
  if (options.source !== undefined) fields.push(`"source":${JSON.stringify(options.source)}`);
  if (options.depth !== undefined) fields.push(`"depth":${options.depth}`);
  if (options.workflow !== undefined) fields.push(`"workflow":${JSON.stringify(options.workflow)}`);
  fields.push(`"event":${eventJson}`);
  return `{${fields.join(',')}}`;
}

/** The envelope `encodeAsyncEvent` wrote; INTERNAL when the payload is not one (nothing else writes it). */
export function decodeAsyncEvent(payload: string): AsyncEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch (err) {
    throw new PlatformError('INTERNAL', 'a queued event is not valid JSON', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || !('event' in parsed)) {
    throw new PlatformError('INTERNAL', 'a queued event has no event');
  }
  const envelope = parsed as Record<string, unknown>;
  const text = (key: string): string | undefined => (typeof envelope[key] === 'string' ? envelope[key] : undefined);
  const count = (key: string): number | undefined =>
    typeof envelope[key] === 'number' && Number.isInteger(envelope[key]) ? envelope[key] : undefined;
  const workflow = workflowRef(envelope['workflow']);
  return {
    eventJson: JSON.stringify(envelope['event']),
    qualifier: text('qualifier'),
    retries: count('retries'),
    maxEventAgeSeconds: count('maxEventAgeSeconds'),
    source: text('source'),
    depth: count('depth'),
    // Present only on a workflow node attempt's event.
    ...(workflow === undefined ? {} : { workflow }),
  };
}

function workflowRef(value: unknown): WorkflowNodeRef | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const ref = value as Record<string, unknown>;
  const { project, domain, name, node, attempt, timeoutSeconds } = ref;
  if (
    typeof project !== 'string' ||
    typeof domain !== 'string' ||
    typeof name !== 'string' ||
    typeof node !== 'string' ||
    typeof attempt !== 'number' ||
    !Number.isInteger(attempt)
  ) {
    return undefined;
  }
  return {
    project,
    domain,
    name,
    node,
    attempt,
    ...(typeof timeoutSeconds === 'number' ? { timeoutSeconds } : {}),
  };
}
