import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { PlatformError, errorCodes, type ErrorCode } from '../core/errors.js';
import { PlatformErrorInfo } from '../gen/savassan/common/v1/error.js';

/** Trailing metadata key holding the serialized PlatformErrorInfo of a failed call (proto/savassan/common/v1). */
export const errorInfoKey = 'savassan-error-bin';
/** The bare code beside it, readable by tools that do not decode the binary trailer (grpcurl). */
export const errorCodeKey = 'savassan-error-code';

/** The gRPC status each PlatformError code travels as; the exact code rides in the trailer. */
const grpcStatusOf: Record<ErrorCode, status> = {
  BAD_REQUEST: status.INVALID_ARGUMENT,
  INVALID_NAME: status.INVALID_ARGUMENT,
  INVALID_CONFIG: status.INVALID_ARGUMENT,
  INVALID_BUNDLE: status.INVALID_ARGUMENT,
  UNAUTHORIZED: status.UNAUTHENTICATED,
  NOT_FOUND: status.NOT_FOUND,
  REQUEST_TIMEOUT: status.DEADLINE_EXCEEDED,
  CONFLICT: status.FAILED_PRECONDITION,
  PAYLOAD_TOO_LARGE: status.RESOURCE_EXHAUSTED,
  TOO_MANY_REQUESTS: status.RESOURCE_EXHAUSTED,
  FUNCTION_ERROR: status.FAILED_PRECONDITION,
  FUNCTION_INIT_ERROR: status.FAILED_PRECONDITION,
  FUNCTION_CRASHED: status.FAILED_PRECONDITION,
  FUNCTION_OUT_OF_MEMORY: status.FAILED_PRECONDITION,
  FUNCTION_TIMEOUT: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
};

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCodes, code);
}

/** A PlatformError as the message that carries it: in a failed call's trailer, or in an InvokeReply. */
export function errorInfoFromError(error: PlatformError): PlatformErrorInfo {
  return { code: error.code, message: error.rawMessage, detailsJson: JSON.stringify(error.details) };
}

/** The PlatformError an info message carries (an unknown code becomes INTERNAL); throws on details that are not JSON. */
export function platformErrorFromInfo(info: PlatformErrorInfo, cause?: unknown): PlatformError {
  const details: unknown = info.detailsJson === '' ? {} : JSON.parse(info.detailsJson);
  return new PlatformError(isErrorCode(info.code) ? info.code : 'INTERNAL', info.message, {
    cause,
    details: typeof details === 'object' && details !== null ? (details as Record<string, unknown>) : {},
  });
}

/** What a server answers a failed call with: a coarse gRPC status, the PlatformError exactly in the trailer. */
export function grpcStatusFromError(err: unknown): Partial<StatusObject> & { code: status } {
  const error = PlatformError.from(err);
  const metadata = new Metadata();
  const info = PlatformErrorInfo.encode(errorInfoFromError(error)).finish();
  metadata.set(errorInfoKey, Buffer.from(info));
  metadata.set(errorCodeKey, error.code);
  return { code: grpcStatusOf[error.code], details: error.rawMessage, metadata };
}

function decodeInfo(err: ServiceError): PlatformError | null {
  const [value] = err.metadata?.get(errorInfoKey) ?? [];
  if (!Buffer.isBuffer(value)) return null;
  try {
    return platformErrorFromInfo(PlatformErrorInfo.decode(value), err);
  } catch {
    return null;
  }
}

/** Which call failed, for messages about transport failures. */
export interface CallDescription {
  /** Who was called, e.g. `agent node-a at 10.0.0.5:7070`. */
  peer: string;
  /** The RPC, e.g. `Invoke`. */
  method: string;
  /** The call's deadline, when it had one. */
  deadlineMs?: number | undefined;
}

/**
 * The PlatformError a failed call stands for: the server's own error when it sent one (same code, message and
 * details as in embedded mode), else a description of the transport failure naming the peer.
 */
export function platformErrorFromGrpc(err: unknown, call: CallDescription): PlatformError {
  if (err instanceof PlatformError) return err;
  const { peer, method, deadlineMs } = call;
  if (!(err instanceof Error) || typeof (err as Partial<ServiceError>).code !== 'number') {
    const why = err instanceof Error ? err.message : String(err);
    return new PlatformError('UNAVAILABLE', `cannot call ${method} on ${peer}: ${why}`, { cause: err });
  }
  const serviceError = err as ServiceError;
  const sent = decodeInfo(serviceError);
  if (sent !== null) return sent;
  const why = serviceError.details || serviceError.message;
  const options = { cause: err, details: { grpcStatus: status[serviceError.code] } };
  switch (serviceError.code) {
    case status.UNAVAILABLE: {
      // No connection was ever made: the call did not reach the peer, so the caller may safely try elsewhere.
      const notDelivered = /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOENT/.test(why);
      return new PlatformError('UNAVAILABLE', `${peer} is unreachable (${method}): ${why}`, {
        ...options,
        details: { ...options.details, notDelivered },
      });
    }
    case status.DEADLINE_EXCEEDED: {
      const within = deadlineMs === undefined ? 'in time' : `within ${deadlineMs} ms`;
      return new PlatformError('UNAVAILABLE', `${peer} did not answer ${method} ${within}`, options);
    }
    case status.CANCELLED:
      return new PlatformError('UNAVAILABLE', `${method} on ${peer} was cancelled: ${why}`, options);
    case status.UNAUTHENTICATED:
      return new PlatformError('UNAUTHORIZED', `${peer} refused ${method}: ${why}`, options);
    case status.RESOURCE_EXHAUSTED:
      return new PlatformError('PAYLOAD_TOO_LARGE', `${method} on ${peer}: ${why}`, options);
    case status.UNIMPLEMENTED:
      return new PlatformError(
        'INTERNAL',
        `${peer} does not implement ${method} (another Savassan version?): ${why}`,
        options,
      );
    default:
      return new PlatformError('INTERNAL', `${method} on ${peer} failed: ${why}`, options);
  }
}
