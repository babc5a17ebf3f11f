// The one place where the control plane's domain types (src/core, src/control-plane) and the generated messages of
// savassan.leader.v1 meet: the server (leader-server.ts) and the client (leader-client.ts) convert through here.
import { PlatformError } from '../core/errors.js';
import type { BuildInfo } from '../core/build-info.js';
import type { ControlPlaneView, UpgradeStatus } from '../core/control-plane-view.js';
import type { PoolItem } from '../core/ports/pool.js';
import type { InstanceRef, ProvisionRequest, SerializedError } from '../core/types.js';
import type { ControlChange, ControlSnapshot } from '../control-plane/control-state.js';
import type { FollowEvent } from '../control-plane/leader-host.js';
import type * as pb from '../gen/savassan/leader/v1/leader.js';
import { maxMessageBytes } from '../grpc/grpc-transport.js';

/**
 * The largest JSON document (a snapshot, a change, a view, an upgrade status) one message carries: what fits in a
 * gRPC message with room for the rest of it. Larger ones are refused rather than cut off by the transport.
 */
export const maxControlJsonBytes = maxMessageBytes - 64 * 1024;

/** A message field the sender must set was absent: the peer speaks another version of the contract. */
function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new PlatformError('BAD_REQUEST', `gRPC message without ${what}`);
  return value;
}

export function instanceToProto(ref: InstanceRef): pb.Instance {
  return {
    instanceId: ref.instanceId,
    functionName: ref.functionName,
    incarnation: ref.incarnation,
    version: ref.version,
    nodeId: ref.nodeId,
    createdAtMs: ref.createdAt,
    initMs: ref.initMs,
    invocations: ref.invocations,
    idleSinceMs: ref.idleSince,
  };
}

export function instanceFromProto(instance: pb.Instance | undefined): InstanceRef {
  const { instanceId, functionName, incarnation, version, nodeId, createdAtMs, initMs, invocations, idleSinceMs } =
    required(instance, 'an instance');
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

/**
 * A provisioning failure on the wire. The message has a code, a message and details; the error's `name` (and its
 * `stack`, when it has one) ride in the details, so a waiter gets back the very SerializedError that was pushed.
 */
export function failureToProto(error: SerializedError): pb.ProvisionFailure {
  const details = error.stack === undefined ? { name: error.name } : { name: error.name, stack: error.stack };
  return { code: error.code ?? '', message: error.message, detailsJson: JSON.stringify(details) };
}

export function failureFromProto(failure: pb.ProvisionFailure | undefined): SerializedError {
  const { code, message, detailsJson } = required(failure, 'a provisioning failure');
  const details = parseJson<Record<string, unknown>>(detailsJson === '' ? '{}' : detailsJson, 'failure details');
  const name = typeof details.name === 'string' ? details.name : 'Error';
  const error: SerializedError = { name, message };
  if (code !== '') error.code = code;
  if (typeof details.stack === 'string') error.stack = details.stack;
  return error;
}

export function poolItemToProto(item: PoolItem | null): pb.WaitResponse {
  if (item === null) return {};
  return item.kind === 'instance'
    ? { instance: instanceToProto(item.instance) }
    : { failure: failureToProto(item.error) };
}

export function poolItemFromProto(response: pb.WaitResponse): PoolItem | null {
  if (response.instance !== undefined) return { kind: 'instance', instance: instanceFromProto(response.instance) };
  if (response.failure !== undefined) return { kind: 'failure', error: failureFromProto(response.failure) };
  return null;
}

export function provisionRequestToProto(request: ProvisionRequest): pb.ProvisionRequest {
  return {
    functionName: request.functionName,
    incarnation: request.incarnation,
    version: request.version,
    reason: request.reason,
    requestedAtMs: request.requestedAt,
    traceparent: request.traceparent ?? '',
  };
}

export function provisionRequestFromProto(request: pb.ProvisionRequest | undefined): ProvisionRequest {
  const { functionName, incarnation, version, reason, requestedAtMs, traceparent } = required(
    request,
    'a provisioning request',
  );
  if (reason !== 'demand' && reason !== 'min-instances') {
    throw new PlatformError('BAD_REQUEST', `unknown provisioning reason ${JSON.stringify(reason)} on the wire`);
  }
  const out: ProvisionRequest = { functionName, incarnation, version, reason, requestedAt: requestedAtMs };
  if (traceparent !== '') out.traceparent = traceparent;
  return out;
}

export function buildToProto(build: BuildInfo): pb.Build {
  return { version: build.version, build: build.build, protocol: build.protocol };
}

export function buildFromProto(build: pb.Build | undefined): BuildInfo {
  const { version, build: id, protocol } = required(build, 'a build');
  return { version, build: id, protocol };
}

/** `value` as JSON bytes; BAD_REQUEST when they are over `maxControlJsonBytes`. */
export function jsonToBytes(value: unknown, what: string): Buffer {
  const bytes = Buffer.from(JSON.stringify(value));
  if (bytes.byteLength > maxControlJsonBytes) {
    throw new PlatformError(
      'BAD_REQUEST',
      `${what} is ${bytes.byteLength} bytes of JSON, over the ${maxControlJsonBytes} bytes one message carries`,
    );
  }
  return bytes;
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `${what} on the wire is not JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * The value JSON bytes carry; BAD_REQUEST when they are over `maxControlJsonBytes` or not JSON. The shape is the
 * sender's (a peer that proved it holds the cluster token and speaks this control protocol).
 */
export function jsonFromBytes<T>(bytes: Uint8Array, what: string): T {
  if (bytes.byteLength > maxControlJsonBytes) {
    throw new PlatformError(
      'BAD_REQUEST',
      `${what} is ${bytes.byteLength} bytes of JSON, over the ${maxControlJsonBytes} bytes one message carries`,
    );
  }
  if (bytes.byteLength === 0) throw new PlatformError('BAD_REQUEST', `gRPC message without ${what}`);
  return parseJson<T>(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), what);
}

export const snapshotToBytes = (snapshot: ControlSnapshot): Buffer => jsonToBytes(snapshot, 'a control snapshot');
export const snapshotFromBytes = (bytes: Uint8Array): ControlSnapshot =>
  jsonFromBytes<ControlSnapshot>(bytes, 'a control snapshot');
export const viewToBytes = (view: ControlPlaneView): Buffer => jsonToBytes(view, 'a control-plane view');
export const viewFromBytes = (bytes: Uint8Array): ControlPlaneView =>
  jsonFromBytes<ControlPlaneView>(bytes, 'a control-plane view');
export const upgradeToBytes = (status: UpgradeStatus): Buffer => jsonToBytes(status, 'an upgrade status');
export const upgradeFromBytes = (bytes: Uint8Array): UpgradeStatus =>
  jsonFromBytes<UpgradeStatus>(bytes, 'an upgrade status');

/**
 * A follow event as the messages that carry it: a snapshot is one message; a batch of changes is split into as
 * many messages as keep each under `maxControlJsonBytes`, their sequence numbers following on.
 */
export function followEventToProto(event: FollowEvent): pb.FollowResponse[] {
  if ('snapshot' in event) return [{ snapshotJson: snapshotToBytes(event.snapshot) }];
  const messages: pb.FollowResponse[] = [];
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let firstSeq = event.firstSeq;
  for (const change of event.changes) {
    const bytes = jsonToBytes(change, 'a control change');
    // Each repeated field costs its bytes and a few of framing.
    if (batch.length > 0 && batchBytes + bytes.byteLength + 16 > maxControlJsonBytes) {
      messages.push({ changes: { firstSeq, changesJson: batch } });
      firstSeq += batch.length;
      batch = [];
      batchBytes = 0;
    }
    batch.push(bytes);
    batchBytes += bytes.byteLength + 16;
  }
  if (batch.length > 0) messages.push({ changes: { firstSeq, changesJson: batch } });
  return messages;
}

export function followEventFromProto(message: pb.FollowResponse): FollowEvent {
  if (message.snapshotJson !== undefined) return { snapshot: snapshotFromBytes(message.snapshotJson) };
  const { firstSeq, changesJson } = required(message.changes, 'a snapshot or changes');
  return { firstSeq, changes: changesJson.map((bytes) => jsonFromBytes<ControlChange>(bytes, 'a control change')) };
}
