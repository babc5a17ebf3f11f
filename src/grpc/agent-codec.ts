// The one place where the Agent's domain types (src/core) and its generated gRPC messages (src/gen) meet. Both the
// server (src/agent/grpc-server.ts) and the client (src/gateway/grpc-agent-client.ts) convert through here.
import { PlatformError } from '../core/errors.js';
import type { SandboxConfig } from '../core/function-config.js';
import type {
  InvokeOutcome,
  InvokeRequest,
  InvokeStatus,
  SandboxInfo,
  SandboxLogLine,
  SandboxSpec,
} from '../core/ports/agent-api.js';
import type { NodeInfo } from '../core/ports/cluster.js';
import type { InstanceRef, SerializedError } from '../core/types.js';
import * as pb from '../gen/savassan/agent/v1/agent.js';

/** A message field the sender must set was absent: the peer speaks another version of the contract. */
function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new PlatformError('BAD_REQUEST', `gRPC message without ${what}`);
  return value;
}

/** Two-way enum mapping; an unknown wire value is an error, not a silent default. */
function enumMapping<D extends string, P extends number>(
  name: string,
  pairs: readonly (readonly [D, P])[],
): { toProto(value: D): P; fromProto(value: P): D } {
  const toProto = new Map<D, P>(pairs);
  const fromProto = new Map<P, D>(pairs.map(([d, p]) => [p, d]));
  return {
    toProto(value) {
      const mapped = toProto.get(value);
      if (mapped === undefined)
        throw new PlatformError('INTERNAL', `${name} ${JSON.stringify(value)} has no wire value`);
      return mapped;
    },
    fromProto(value) {
      const mapped = fromProto.get(value);
      if (mapped === undefined) throw new PlatformError('BAD_REQUEST', `unknown ${name} ${value} on the wire`);
      return mapped;
    },
  };
}

const invokeStatus = enumMapping<InvokeStatus, pb.InvokeStatus>('invoke status', [
  ['success', pb.InvokeStatus.INVOKE_STATUS_SUCCESS],
  ['error', pb.InvokeStatus.INVOKE_STATUS_ERROR],
  ['timeout', pb.InvokeStatus.INVOKE_STATUS_TIMEOUT],
  ['crash', pb.InvokeStatus.INVOKE_STATUS_CRASH],
  ['oom', pb.InvokeStatus.INVOKE_STATUS_OOM],
]);

const sandboxState = enumMapping<SandboxInfo['state'], pb.SandboxState>('sandbox state', [
  ['starting', pb.SandboxState.SANDBOX_STATE_STARTING],
  ['idle', pb.SandboxState.SANDBOX_STATE_IDLE],
  ['busy', pb.SandboxState.SANDBOX_STATE_BUSY],
  ['stopping', pb.SandboxState.SANDBOX_STATE_STOPPING],
]);

const logStream = enumMapping<SandboxLogLine['stream'], pb.LogStream>('log stream', [
  ['stdout', pb.LogStream.LOG_STREAM_STDOUT],
  ['stderr', pb.LogStream.LOG_STREAM_STDERR],
]);

function configToProto(config: SandboxConfig): pb.FunctionConfig {
  return {
    handler: config.handler,
    runtime: config.runtime,
    env: { ...config.env },
    timeoutSeconds: config.timeoutSeconds,
    memoryMb: config.memoryMB,
    maxInstances: config.maxInstances,
    minInstances: config.minInstances,
    idleSeconds: config.idleSeconds,
    network: config.network,
    allowNet: [...config.allowNet],
    secrets: { ...config.secrets },
  };
}

function configFromProto(config: pb.FunctionConfig): SandboxConfig {
  return {
    handler: config.handler,
    runtime: config.runtime,
    env: { ...config.env },
    timeoutSeconds: config.timeoutSeconds,
    memoryMB: config.memoryMb,
    maxInstances: config.maxInstances,
    minInstances: config.minInstances,
    idleSeconds: config.idleSeconds,
    network: config.network,
    allowNet: [...config.allowNet],
    secrets: { ...config.secrets },
  };
}

export function sandboxSpecToProto(spec: SandboxSpec): pb.SandboxSpec {
  return {
    functionName: spec.functionName,
    version: spec.version,
    codeSha256: spec.codeSha256,
    config: configToProto(spec.config),
    incarnation: spec.incarnation,
    secretEnv: { ...spec.secretEnv },
    ...(spec.traceparent === undefined ? {} : { traceparent: spec.traceparent }),
  };
}

export function sandboxSpecFromProto(spec: pb.SandboxSpec | undefined): SandboxSpec {
  const { functionName, incarnation, version, codeSha256, config, secretEnv, traceparent } = required(
    spec,
    'a sandbox spec',
  );
  return {
    functionName,
    incarnation,
    version,
    codeSha256,
    config: configFromProto(required(config, 'a function config')),
    ...(Object.keys(secretEnv).length === 0 ? {} : { secretEnv: { ...secretEnv } }),
    ...(traceparent === undefined ? {} : { traceparent }),
  };
}

export function instanceRefToProto(ref: InstanceRef): pb.InstanceRef {
  return {
    instanceId: ref.instanceId,
    functionName: ref.functionName,
    version: ref.version,
    nodeId: ref.nodeId,
    createdAtMs: ref.createdAt,
    initMs: ref.initMs,
    invocations: ref.invocations,
    idleSinceMs: ref.idleSince,
    incarnation: ref.incarnation,
  };
}

export function instanceRefFromProto(ref: pb.InstanceRef | undefined): InstanceRef {
  const { instanceId, functionName, incarnation, version, nodeId, createdAtMs, initMs, invocations, idleSinceMs } =
    required(ref, 'an instance');
  return {
    instanceId,
    functionName,
    incarnation,
    version,
    nodeId,
    createdAt: createdAtMs,
    initMs,
    invocations,
    idleSince: idleSinceMs,
  };
}

/** The generated code takes bytes as Buffers: a view of the same memory, not a copy. */
function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function invokeRequestToProto(instanceId: string, request: InvokeRequest): pb.InvokeRequest {
  return {
    instanceId,
    invocationId: request.invocationId,
    eventJson: bufferOf(request.eventJson),
    // uint32 on the wire; the Agent wants a positive whole number of milliseconds.
    timeoutMs: Math.max(0, Math.ceil(request.timeoutMs)),
    ...(request.clientContext === undefined ? {} : { clientContext: request.clientContext }),
    // Set as it is: the encoder leaves an undefined optional field out, and no object is spread on each call.
    traceparent: request.traceparent,
  };
}

export function invokeRequestFromProto(request: pb.InvokeRequest): { instanceId: string; request: InvokeRequest } {
  const { instanceId, invocationId, eventJson, timeoutMs, clientContext, traceparent } = request;
  return { instanceId, request: { invocationId, eventJson, timeoutMs, clientContext, traceparent } };
}

export function errorToProto(error: SerializedError): pb.SerializedError {
  return { name: error.name, code: error.code, message: error.message, stack: error.stack };
}

export function errorFromProto(error: pb.SerializedError): SerializedError {
  const out: SerializedError = { name: error.name, message: error.message };
  if (error.code !== undefined) out.code = error.code;
  if (error.stack !== undefined) out.stack = error.stack;
  return out;
}

export function invokeOutcomeToProto(outcome: InvokeOutcome): pb.InvokeOutcome {
  return {
    status: invokeStatus.toProto(outcome.status),
    payloadJson: outcome.payloadJson === undefined ? undefined : bufferOf(outcome.payloadJson),
    error: outcome.error === undefined ? undefined : errorToProto(outcome.error),
    durationMs: outcome.durationMs,
    peakMemoryBytes: outcome.peakMemoryBytes ?? undefined,
    logKey: outcome.logKey ?? undefined,
    reusable: outcome.reusable,
  };
}

export function invokeOutcomeFromProto(outcome: pb.InvokeOutcome | undefined): InvokeOutcome {
  const { status, payloadJson, error, durationMs, peakMemoryBytes, logKey, reusable } = required(
    outcome,
    'an invoke outcome',
  );
  const out: InvokeOutcome = {
    status: invokeStatus.fromProto(status),
    durationMs,
    peakMemoryBytes: peakMemoryBytes ?? null,
    logKey: logKey ?? null,
    reusable,
  };
  if (payloadJson !== undefined) out.payloadJson = payloadJson;
  if (error !== undefined) out.error = errorFromProto(error);
  return out;
}

export function sandboxInfoToProto(info: SandboxInfo): pb.SandboxInfo {
  return {
    instanceId: info.instanceId,
    functionName: info.functionName,
    version: info.version,
    pid: info.pid ?? undefined,
    state: sandboxState.toProto(info.state),
    createdAtMs: info.createdAt,
    invocations: info.invocations,
    incarnation: info.incarnation,
  };
}

export function sandboxInfoFromProto(info: pb.SandboxInfo): SandboxInfo {
  return {
    instanceId: info.instanceId,
    functionName: info.functionName,
    incarnation: info.incarnation,
    version: info.version,
    pid: info.pid ?? null,
    state: sandboxState.fromProto(info.state),
    createdAt: info.createdAtMs,
    invocations: info.invocations,
  };
}

export function nodeInfoToProto(info: NodeInfo): pb.NodeInfo {
  return {
    nodeId: info.nodeId,
    agentAddress: info.agentAddress,
    capacity: info.capacity,
    sandboxes: info.sandboxes,
    sandboxRuntime: info.sandboxRuntime,
    isolating: info.isolating,
    codeCached: [...info.codeCached],
    startedAtMs: info.startedAt,
  };
}

export function nodeInfoFromProto(info: pb.NodeInfo | undefined): NodeInfo {
  const { nodeId, agentAddress, capacity, sandboxes, sandboxRuntime, isolating, codeCached, startedAtMs } = required(
    info,
    'node info',
  );
  return {
    nodeId,
    agentAddress,
    capacity,
    sandboxes,
    sandboxRuntime,
    isolating,
    codeCached: [...codeCached],
    startedAt: startedAtMs,
  };
}

/** Which sandboxes' output a log stream carries; both set means both must match. */
export interface LogFilter {
  instanceId?: string | undefined;
  functionName?: string | undefined;
}

export function logFilterMatches(filter: LogFilter, line: SandboxLogLine): boolean {
  return (
    (filter.instanceId === undefined || filter.instanceId === line.instanceId) &&
    (filter.functionName === undefined || filter.functionName === line.functionName)
  );
}

export function logFilterToProto(filter: LogFilter): pb.StreamLogsRequest {
  return { instanceId: filter.instanceId, functionName: filter.functionName };
}

export function logFilterFromProto(request: pb.StreamLogsRequest): LogFilter {
  return { instanceId: request.instanceId, functionName: request.functionName };
}

/** A line as a log stream delivers it: `droppedBefore` counts lines dropped just before it for a slow reader. */
export type StreamedLogLine = SandboxLogLine & { droppedBefore: number };

export function logLineToProto(line: SandboxLogLine, droppedBefore: number): pb.StreamLogsResponse {
  return {
    instanceId: line.instanceId,
    functionName: line.functionName ?? undefined,
    invocationId: line.invocationId ?? undefined,
    version: line.version ?? undefined,
    stream: logStream.toProto(line.stream),
    text: line.text,
    timeMs: line.time,
    droppedBefore,
  };
}

export function logLineFromProto(line: pb.StreamLogsResponse): StreamedLogLine {
  return {
    instanceId: line.instanceId,
    functionName: line.functionName ?? null,
    invocationId: line.invocationId ?? null,
    version: line.version ?? null,
    stream: logStream.fromProto(line.stream),
    text: line.text,
    time: line.timeMs,
    droppedBefore: line.droppedBefore,
  };
}

/**
 * The InvokeStream's messages as bytes. Each side encodes its own messages (the stream's serializer passes bytes
 * through) so that it knows their exact size before it sends them: grpc-js ends a call on a message over the limit,
 * and one stream carries many invocations. The decoders turn bytes that are not a message into one with call id 0,
 * which no call has, rather than throw: a malformed message is ignored, never the end of the stream (grpc-js ends a
 * call whose deserializer throws, and a null message would end the stream's reading side).
 */
export function invokeCallToBytes(callId: number, instanceId: string, request: InvokeRequest): Buffer {
  return bufferOf(
    pb.InvokeStreamRequest.encode({ callId, request: invokeRequestToProto(instanceId, request) }).finish(),
  );
}

export function invokeCallFromBytes(bytes: Buffer): pb.InvokeStreamRequest {
  try {
    return pb.InvokeStreamRequest.decode(bytes);
  } catch {
    return { callId: 0 };
  }
}

export function invokeReplyToBytes(reply: pb.InvokeStreamResponse): Buffer {
  return bufferOf(pb.InvokeStreamResponse.encode(reply).finish());
}

export function invokeReplyFromBytes(bytes: Buffer): pb.InvokeStreamResponse {
  try {
    return pb.InvokeStreamResponse.decode(bytes);
  } catch {
    return { callId: 0 };
  }
}

/** What an InvokeStreamResponse says besides its call id: an outcome or an error. */
export type InvokeReplyResult = Omit<pb.InvokeStreamResponse, 'callId'>;

function bytesAsTheyAre(bytes: Buffer): Buffer {
  return bytes;
}

/** The Agent service as both ends speak it: InvokeStream's messages are the bytes above. */
export const agentServiceDefinition = {
  ...pb.AgentService,
  invokeStream: {
    ...pb.AgentService.invokeStream,
    requestSerialize: bytesAsTheyAre,
    requestDeserialize: invokeCallFromBytes,
    responseSerialize: bytesAsTheyAre,
    responseDeserialize: invokeReplyFromBytes,
  },
} as const;
