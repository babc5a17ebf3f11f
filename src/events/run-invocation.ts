import type { InvokeOutcome } from '../core/ports/agent-api.js';

/** An invocation that ran (whatever its outcome), as the invoke path reports it. */
export interface RanInvocation {
  /** The invocation record's id (its logs). */
  invocationId: string;
  functionName: string;
  version: number;
  outcome: InvokeOutcome;
}

/**
 * Runs one invocation through the normal invoke path (the gateway's `Invoker`): the event's JSON bytes, and the
 * version or alias to run (default `live`). Rejects with a `PlatformError` when it could not run: NOT_FOUND (the
 * function or qualifier is gone), TOO_MANY_REQUESTS (no capacity), UNAVAILABLE and the like.
 */
export type RunInvocation = (
  functionName: string,
  eventJson: Uint8Array,
  qualifier: string | undefined,
) => Promise<RanInvocation>;
