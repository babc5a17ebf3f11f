import type { SandboxConfig } from '../function-config.js';
import type { InstanceRef, SerializedError } from '../types.js';

/** What the Agent needs to create a sandbox for one function version. */
export interface SandboxSpec {
  functionName: string;
  /** The function's incarnation (`FunctionRecord.incarnation`); empty for a deploy's trial sandbox. */
  incarnation: string;
  version: number;
  codeSha256: string;
  config: SandboxConfig;
  /**
   * The values of the secrets `config.secrets` names, by variable, read from the metadata store when the sandbox is
   * created (never stored with the version): the sandbox's environment is `config.env` plus these. Never log them.
   */
  secretEnv?: Readonly<Record<string, string>> | undefined;
  /** The W3C `traceparent` of the Manager's provisioning span, when tracing is on: the sandbox init span joins it. */
  traceparent?: string | undefined;
}

export interface InvokeRequest {
  invocationId: string;
  /**
   * The event as the bytes of its JSON text, already validated by the gateway; passed through untouched (only the
   * sandbox parses it). At most `maxEventBytes`.
   */
  eventJson: Uint8Array;
  /** The function timeout; the Agent kills the sandbox when it passes (the one place it is enforced). */
  timeoutMs: number;
  /** The caller's client context, JSON text: the handler's `context.clientContext`. */
  clientContext?: string | undefined;
  /**
   * The W3C `traceparent` of the gateway's span for this call, when tracing is on: the Agent's spans continue it, and
   * the handler receives the context of its handler-run span.
   */
  traceparent?: string | undefined;
}

export type InvokeStatus = 'success' | 'error' | 'timeout' | 'crash' | 'oom';

export interface InvokeOutcome {
  status: InvokeStatus;
  /**
   * The handler's result as the bytes of its JSON text (`success` only), as the sandbox serialised it; `undefined`
   * results become `null`.
   */
  payloadJson?: Uint8Array | undefined;
  error?: SerializedError | undefined;
  durationMs: number;
  /** Peak resident memory of the sandbox so far, when known. */
  peakMemoryBytes: number | null;
  /** Blob key of this invocation's log, or null if it could not be stored. */
  logKey: string | null;
  /** False when the sandbox was destroyed (timeout, crash, OOM) and must not return to the pool. */
  reusable: boolean;
}

export interface SandboxInfo {
  instanceId: string;
  functionName: string;
  incarnation: string;
  version: number;
  pid: number | null;
  state: 'starting' | 'idle' | 'busy' | 'stopping';
  createdAt: number;
  invocations: number;
}

/** One chunk of a sandbox's output as the Agent receives it (usually whole lines), for live log streams. */
export interface SandboxLogLine {
  instanceId: string;
  /** Null while the sandbox is a generic stem cell, not yet any function's. */
  functionName: string | null;
  /** Null for output outside an invocation (module load, or after a result). */
  invocationId: string | null;
  /** The function version the sandbox runs; null while it is a generic stem cell. */
  version: number | null;
  stream: 'stdout' | 'stderr';
  text: string;
  /** When the Agent received it (ms since epoch). */
  time: number;
}

/**
 * The Agent as the Gateway and Manager see it: a direct object in embedded mode,
 * a gRPC client in cluster mode.
 */
export interface AgentApi {
  readonly nodeId: string;
  /**
   * Create a sandbox and run the function's init (load module, resolve handler).
   * Rejects with FUNCTION_INIT_ERROR / INVALID_BUNDLE when the code cannot load.
   */
  createSandbox(spec: SandboxSpec): Promise<InstanceRef>;
  /** Run one invocation on an idle sandbox. Function failures are outcomes, not rejections. */
  invoke(instanceId: string, request: InvokeRequest): Promise<InvokeOutcome>;
  /** Stop a sandbox and wait for its process to exit. Idempotent. */
  destroySandbox(instanceId: string): Promise<void>;
  listSandboxes(): Promise<SandboxInfo[]>;
}
