/**
 * Explains network failures of a function deployed without network access: its sandbox has no network, so every
 * name lookup and connection fails, and `TypeError: fetch failed` alone does not say why.
 *
 * Runs in the sandbox: pure, no imports.
 */

/** What is added to the message of such an error. */
export const offlineHint =
  ' (this function was deployed without network access: deploy it with --network to reach the network)';

/** Codes of a name lookup or connection that fails for want of a network. */
const networkFailureCodes = new Set(['EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL']);

function isLoopback(address: string): boolean {
  return (
    address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.') || address === 'localhost'
  );
}

/**
 * Whether `value` is, or was caused by, a network failure: one of `networkFailureCodes`, or a refused connection to an
 * address other than loopback (loopback works without a network). Follows `cause` (fetch's `TypeError` holds the
 * socket's error there) and `errors` (an `AggregateError` of several addresses tried), a few levels deep.
 */
export function isNetworkFailure(value: unknown, depth = 0): boolean {
  if (depth > 4 || typeof value !== 'object' || value === null) return false;
  const { code, address, cause, errors } = value as {
    code?: unknown;
    address?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (typeof code === 'string' && networkFailureCodes.has(code)) return true;
  if (code === 'ECONNREFUSED' && typeof address === 'string' && !isLoopback(address)) return true;
  if (Array.isArray(errors) && errors.some((error) => isNetworkFailure(error, depth + 1))) return true;
  return isNetworkFailure(cause, depth + 1);
}

/**
 * The message (and stack, whose first line repeats it) of an error from an offline sandbox, with `offlineHint` added
 * when the error is a network failure; unchanged otherwise.
 */
export function withOfflineHint<T extends { message: string; stack?: string | undefined }>(
  wire: T,
  original: unknown,
  offline: boolean,
): T {
  if (!offline || !isNetworkFailure(original) || wire.message.endsWith(offlineHint)) return wire;
  const message = `${wire.message}${offlineHint}`;
  const stack = wire.stack?.replace(wire.message, message);
  return { ...wire, message, ...(stack === undefined ? {} : { stack }) };
}
