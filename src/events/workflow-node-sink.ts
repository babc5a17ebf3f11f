import type { AttemptStatus } from '../core/ports/invocation-queue.js';
import type { RanInvocation } from './run-invocation.js';

/**
 * The workflow node attempt an asynchronous invocation runs: the async envelope's `workflow` field. The engine
 * queues one event per attempt; the dispatcher asks the `WorkflowNodeSink` before and after running it.
 */
export interface WorkflowNodeRef {
  project: string;
  domain: string;
  /** The execution's name. */
  name: string;
  /** The node row's key: `nodeId`, or `nodeId[index]` for a map element. */
  node: string;
  attempt: number;
  /** The node's own per-attempt timeout (seconds), when it sets one: the attempt is TIMED_OUT after it. */
  timeoutSeconds?: number | undefined;
}

/** How a node attempt's invocation ended, as the dispatcher saw it. */
export type WorkflowNodeOutcome =
  | { status: 'succeeded'; invocationId: string; functionVersion: number; outputJson: Uint8Array }
  | {
      status: 'failed';
      /** Null when nothing ran (the function or version was gone, the event too old). */
      invocationId: string | null;
      /** A PlatformError code (FUNCTION_ERROR, FUNCTION_TIMEOUT, NOT_FOUND...). */
      code: string;
      message: string;
      /** USER: the function's own failure or input; SYSTEM: the platform's. */
      kind: 'USER' | 'SYSTEM';
    };

/**
 * Where the dispatcher reports workflow node attempts (implemented over the workflow store). Each attempt runs at
 * most once: `claim` is a compare-and-set that only one delivery of the event wins, and only while the attempt is
 * still the node's current one.
 */
export interface WorkflowNodeSink {
  /**
   * Take the attempt for this process; false: do not run it (it ended, was superseded, or another took it).
   * `functionTimeoutSeconds` (the function's own timeout) bounds how long the claim is held when the node sets none.
   */
  claim(ref: WorkflowNodeRef, functionTimeoutSeconds: number): Promise<boolean>;
  /** Give a claimed attempt back without running it (a throttle: the queue delivers the event again later). */
  release(ref: WorkflowNodeRef): Promise<void>;
  /** The claimed attempt ran (or could not run, for good): record its outcome. Ignored when no longer current. */
  report(ref: WorkflowNodeRef, outcome: WorkflowNodeOutcome): Promise<void>;
}

/** The error code a workflow node attempt's failure is reported with, by the attempt's status. */
const failureCodes: Partial<Record<AttemptStatus, string>> = {
  error: 'FUNCTION_ERROR',
  timeout: 'FUNCTION_TIMEOUT',
  crash: 'FUNCTION_CRASHED',
  oom: 'FUNCTION_OUT_OF_MEMORY',
  'init-error': 'FUNCTION_INIT_ERROR',
};

/** How an invocation that ran ends a node attempt: its output, or the function's failure (kind USER). */
export function nodeOutcomeOf(ran: RanInvocation): WorkflowNodeOutcome {
  const { outcome } = ran;
  return outcome.status === 'success'
    ? {
        status: 'succeeded',
        invocationId: ran.invocationId,
        functionVersion: ran.version,
        outputJson: outcome.payloadJson ?? Buffer.from('null'),
      }
    : {
        status: 'failed',
        invocationId: ran.invocationId,
        code: failureCodes[outcome.status] ?? 'FUNCTION_ERROR',
        message: outcome.error === undefined ? outcome.status : `${outcome.error.name}: ${outcome.error.message}`,
        kind: 'USER',
      };
}

/** How an attempt the invoke path refused for good ends: nothing ran, the caller's function or settings are at fault. */
export function refusalOutcome(error: { code: string; rawMessage: string }): WorkflowNodeOutcome {
  return { status: 'failed', invocationId: null, code: error.code, message: error.rawMessage, kind: 'USER' };
}

/** Invoke-path refusals that running the attempt again will not change: the function, version or settings are gone. */
export function refusedForGood(code: string): boolean {
  return code === 'NOT_FOUND' || code === 'BAD_REQUEST' || code === 'INVALID_CONFIG';
}
