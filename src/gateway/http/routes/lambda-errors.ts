// Errors in the AWS Lambda API's dialect: the `x-amzn-ErrorType` header names the exception and the JSON body holds
// `Type` and the message, as the AWS SDKs parse them.
import type { FastifyError } from 'fastify';
import { PlatformError } from '../../../core/errors.js';
import type { ErrorCode } from '../../../core/errors.js';

/** An error of the Lambda API as it goes out: status, exception name and the body's fields. */
export interface LambdaErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const exceptions: Record<ErrorCode, { type: string; status: number }> = {
  BAD_REQUEST: { type: 'InvalidParameterValueException', status: 400 },
  INVALID_NAME: { type: 'InvalidParameterValueException', status: 400 },
  INVALID_CONFIG: { type: 'InvalidParameterValueException', status: 400 },
  INVALID_BUNDLE: { type: 'InvalidParameterValueException', status: 400 },
  UNAUTHORIZED: { type: 'AccessDeniedException', status: 403 },
  NOT_FOUND: { type: 'ResourceNotFoundException', status: 404 },
  REQUEST_TIMEOUT: { type: 'InvalidRequestContentException', status: 400 },
  CONFLICT: { type: 'ResourceConflictException', status: 409 },
  PAYLOAD_TOO_LARGE: { type: 'RequestTooLargeException', status: 413 },
  TOO_MANY_REQUESTS: { type: 'TooManyRequestsException', status: 429 },
  FUNCTION_ERROR: { type: 'ServiceException', status: 500 },
  FUNCTION_INIT_ERROR: { type: 'ServiceException', status: 500 },
  FUNCTION_CRASHED: { type: 'ServiceException', status: 500 },
  FUNCTION_OUT_OF_MEMORY: { type: 'ServiceException', status: 500 },
  FUNCTION_TIMEOUT: { type: 'ServiceException', status: 500 },
  UNAVAILABLE: { type: 'ServiceException', status: 500 },
  INTERNAL: { type: 'ServiceException', status: 500 },
};

/** A Lambda exception that has no platform code of its own (the request's content is not JSON). */
export class LambdaException extends Error {
  constructor(
    readonly type: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The Lambda answer to any error a Lambda route throws: a platform error by its code, Fastify's own (a body over
 * the limit, a bad media type) by their status, anything else a ServiceException.
 */
export function lambdaErrorAnswer(err: unknown): LambdaErrorAnswer {
  let type: string;
  let status: number;
  let message: string;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (err instanceof LambdaException) {
    ({ type, status, message } = err);
  } else {
    const fastify = err as Partial<FastifyError>;
    const error =
      err instanceof PlatformError
        ? err
        : fastify.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || fastify.statusCode === 413
          ? new PlatformError('PAYLOAD_TOO_LARGE', 'the request body is over the limit')
          : typeof fastify.statusCode === 'number' && fastify.statusCode < 500
            ? new PlatformError('BAD_REQUEST', fastify.message ?? 'bad request')
            : PlatformError.from(err);
    ({ type, status } = exceptions[error.code]);
    message = error.rawMessage;
    const retryAfter = error.details['retryAfterSeconds'];
    if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter);
  }
  headers['x-amzn-errortype'] = type;
  // `Type` says whose fault it was, as Lambda's own answers do; the SDKs read the message from either spelling.
  const body = JSON.stringify({ Type: status < 500 ? 'User' : 'Service', message, Message: message });
  return { status, headers, body };
}
