import { PlatformError } from './errors.js';
import type { ErrorCode } from './errors.js';

/**
 * The form of function, alias and schedule names, a DNS label: 1-63 lowercase letters, digits or dashes, starting with a letter
 * (so never all digits: an alias is never taken for a version).
 */
const dnsLabelPattern = /^[a-z][a-z0-9-]{0,62}$/;

export function isDnsLabel(name: unknown): name is string {
  return typeof name === 'string' && dnsLabelPattern.test(name);
}

/** Returns `name` if it is a DNS label; otherwise throws `code`, saying what a `kind` name looks like. */
export function validateDnsLabel(
  name: unknown,
  kind: 'function' | 'alias' | 'queue' | 'schedule',
  code: ErrorCode,
): string {
  if (!isDnsLabel(name)) {
    throw new PlatformError(
      code,
      `invalid ${kind} name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits or dashes, starting with a letter`,
    );
  }
  return name;
}
