// How the Redis adapters store domain values, and how they check what they read back: Redis is shared by every
// process of a cluster, so a value is validated before it becomes a typed object.
import { PlatformError } from '../../core/errors.js';
import type { PoolItem } from '../../core/ports/pool.js';
import { copyInstance } from '../../core/types.js';
import type { InstanceRef, ProvisionRequest, SerializedError } from '../../core/types.js';

/** What a pool script leaves in a mailbox for one waiter; a null item says its registration was dropped as expired. */
export interface Delivery {
  waiter: string;
  item: PoolItem | null;
}

/** The stored form of an instance: exactly the InstanceRef fields, stamped with the time it went idle. */
export function serializedInstance(instance: InstanceRef, idleSince: number): InstanceRef {
  return copyInstance(instance, { idleSince });
}

/** Exactly the SerializedError fields, without undefined ones. */
export function serializedError(error: SerializedError): SerializedError {
  const copy: SerializedError = { name: error.name, message: error.message };
  if (error.code !== undefined) copy.code = error.code;
  if (error.stack !== undefined) copy.stack = error.stack;
  return copy;
}

/** Exactly the ProvisionRequest fields. */
export function serializedRequest(request: ProvisionRequest): ProvisionRequest {
  return {
    functionName: request.functionName,
    incarnation: request.incarnation,
    version: request.version,
    reason: request.reason,
    requestedAt: request.requestedAt,
    ...(request.traceparent === undefined ? {} : { traceparent: request.traceparent }),
  };
}

export function instanceFromJson(json: string): InstanceRef {
  return instanceFromValue(parse(json, 'instance'));
}

export function deliveryFromJson(json: string): Delivery {
  const value = parse(json, 'pool delivery');
  if (!isRecord(value) || !isString(value.waiter)) throw malformed('pool delivery');
  const { waiter, item } = value;
  if (item === null) return { waiter, item: null };
  if (isRecord(item) && item.kind === 'instance') {
    return { waiter, item: { kind: 'instance', instance: instanceFromValue(item.instance) } };
  }
  if (isRecord(item) && item.kind === 'failure')
    return { waiter, item: { kind: 'failure', error: errorFromValue(item.error) } };
  throw malformed('pool delivery');
}

export function requestFromJson(json: string): ProvisionRequest {
  const value = parse(json, 'provisioning request');
  if (!isRecord(value)) throw malformed('provisioning request');
  const { functionName, incarnation, version, reason, requestedAt, traceparent } = value;
  if (
    isString(functionName) &&
    isString(incarnation) &&
    isNumber(version) &&
    isNumber(requestedAt) &&
    (reason === 'demand' || reason === 'min-instances')
  ) {
    // A trace context that is not a short string is dropped, not fatal: it only links spans.
    const trace = isString(traceparent) && traceparent.length <= 64 ? { traceparent } : {};
    return { functionName, incarnation, version, reason, requestedAt, ...trace };
  }
  throw malformed('provisioning request');
}

function instanceFromValue(value: unknown): InstanceRef {
  if (!isRecord(value)) throw malformed('instance');
  const { instanceId, functionName, incarnation, version, nodeId, createdAt, initMs, invocations, idleSince } = value;
  if (
    isString(instanceId) &&
    isString(functionName) &&
    isString(incarnation) &&
    isString(nodeId) &&
    isNumber(version) &&
    isNumber(createdAt) &&
    isNumber(initMs) &&
    isNumber(invocations) &&
    isNumber(idleSince)
  ) {
    return { instanceId, functionName, incarnation, version, nodeId, createdAt, initMs, invocations, idleSince };
  }
  throw malformed('instance');
}

function errorFromValue(value: unknown): SerializedError {
  if (!isRecord(value) || !isString(value.name) || !isString(value.message)) throw malformed('provisioning failure');
  const error: SerializedError = { name: value.name, message: value.message };
  if (isString(value.code)) error.code = value.code;
  if (isString(value.stack)) error.stack = value.stack;
  return error;
}

/** A script reply that is a string or nil. */
export function optionalString(reply: unknown, action: string): string | null {
  if (reply === null || isString(reply)) return reply;
  throw unexpectedReply(action);
}

/** A script reply that is an array of strings. */
export function stringList(reply: unknown, action: string): string[] {
  if (Array.isArray(reply) && reply.every(isString)) return reply;
  throw unexpectedReply(action);
}

/** A script reply that is an array of `length` integers. */
export function numberList(reply: unknown, action: string, length: number): number[] {
  if (Array.isArray(reply) && reply.length === length && reply.every(isNumber)) return reply;
  throw unexpectedReply(action);
}

function parse(json: string, what: string): unknown {
  try {
    return JSON.parse(json) as unknown;
  } catch {
    throw malformed(what);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isNumber = (value: unknown): value is number => typeof value === 'number';

function malformed(what: string): PlatformError {
  return new PlatformError('INTERNAL', `malformed ${what} read from Redis`);
}

function unexpectedReply(action: string): PlatformError {
  return new PlatformError('INTERNAL', `unexpected reply from Redis to ${action}`);
}
