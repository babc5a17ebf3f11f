/**
 * One error type for the whole platform, with a closed set of codes. Each code
 * maps to an HTTP status at the API edge; the code prefixes the message so logs
 * and CLI output say what kind of failure happened.
 */
export const errorCodes = {
  BAD_REQUEST: { status: 400, description: 'The request is malformed or a value is invalid.' },
  INVALID_NAME: { status: 400, description: 'A function or secret name does not match the allowed pattern.' },
  INVALID_CONFIG: { status: 400, description: 'A function setting is out of range or of the wrong type.' },
  INVALID_BUNDLE: {
    status: 400,
    description: 'The function code cannot be loaded: bad zip, syntax error or missing handler.',
  },
  UNAUTHORIZED: {
    status: 401,
    description: 'The caller did not present valid credentials (API key, or the cluster token between nodes).',
  },
  NOT_FOUND: { status: 404, description: 'The function, version, invocation or secret does not exist.' },
  REQUEST_TIMEOUT: {
    status: 408,
    description: 'The request (headers and body) did not arrive in full within the server request timeout.',
  },
  CONFLICT: {
    status: 409,
    description: 'The change conflicts with what exists: a secret cannot be deleted while a function uses it.',
  },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The request body is over the allowed size.' },
  TOO_MANY_REQUESTS: {
    status: 429,
    description:
      'Max instances reached, provisioning queue full, or the node full (its memory or pid budget); retry after the given delay.',
  },
  FUNCTION_ERROR: {
    status: 502,
    description: 'The handler threw, rejected or returned a result that cannot be sent (errorType tells which).',
  },
  FUNCTION_INIT_ERROR: { status: 502, description: 'The function failed while loading or initialising.' },
  FUNCTION_CRASHED: {
    status: 502,
    description: 'The sandbox exited during the invocation (process.exit, crash, signal).',
  },
  FUNCTION_OUT_OF_MEMORY: { status: 502, description: 'The sandbox ran out of memory and was killed.' },
  FUNCTION_TIMEOUT: {
    status: 504,
    description: 'The invocation ran past the function timeout; the sandbox was killed.',
  },
  UNAVAILABLE: { status: 503, description: 'A backend or the server itself is not available right now.' },
  INTERNAL: { status: 500, description: 'An unexpected platform failure.' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof errorCodes;

export interface PlatformErrorOptions {
  cause?: unknown;
  /** Extra JSON-safe fields returned to the API caller (e.g. `retryAfterSeconds`, `errorType`). */
  details?: Record<string, unknown>;
}

export class PlatformError extends Error {
  override readonly name = 'PlatformError';
  readonly code: ErrorCode;
  readonly rawMessage: string;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: PlatformErrorOptions = {}) {
    super(`[${code}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.rawMessage = message;
    this.details = options.details ?? {};
  }

  get status(): number {
    return errorCodes[this.code].status;
  }

  /** True for errors caused by the caller's input or their function code, not by the platform. */
  get isUserError(): boolean {
    return this.status < 500 || this.status === 502 || this.status === 504;
  }

  /** Normalise anything thrown into a PlatformError; use at boundaries only. */
  static from(err: unknown, fallback: ErrorCode = 'INTERNAL'): PlatformError {
    if (err instanceof PlatformError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new PlatformError(fallback, message, { cause: err });
  }
}

export function isPlatformError(err: unknown, code?: ErrorCode): err is PlatformError {
  return err instanceof PlatformError && (code === undefined || err.code === code);
}
