import { PlatformError } from './errors.js';
import type { FunctionUrlAuth, FunctionUrlCors, NewFunctionUrl } from './ports/function-url-store.js';

/** At most this many entries in each CORS list. */
const maxCorsEntries = 50;
const maxCorsEntryLength = 256;

/** A function URL's settings, checked and defaulted. */
export interface FunctionUrlSettings {
  functionName: string;
  auth: FunctionUrlAuth;
  cors: FunctionUrlCors | null;
}

/**
 * Checks and defaults a function URL as asked for: BAD_REQUEST naming the setting that is not valid.
 *
 * @example
 * compileFunctionUrl({ functionName: 'web', cors: { allowOrigins: ['https://a.example'], allowMethods: ['get'], allowHeaders: [] } });
 * // { functionName: 'web', auth: 'key', cors: { allowOrigins: ['https://a.example'], allowMethods: ['GET'], allowHeaders: [] } }
 */
export function compileFunctionUrl(input: NewFunctionUrl): FunctionUrlSettings {
  if (typeof input.functionName !== 'string' || input.functionName === '') {
    throw new PlatformError('BAD_REQUEST', 'a function URL needs a function name');
  }
  const auth = input.auth ?? 'key';
  if (auth !== 'none' && auth !== 'key') {
    throw new PlatformError('BAD_REQUEST', `auth must be none or key, got ${JSON.stringify(auth)}`);
  }
  const cors = input.cors ?? null;
  return {
    functionName: input.functionName,
    auth,
    cors:
      cors === null
        ? null
        : {
            allowOrigins: corsList(cors.allowOrigins, 'cors.allowOrigins', (value) => value),
            allowMethods: corsList(cors.allowMethods, 'cors.allowMethods', (value) => value.toUpperCase()),
            allowHeaders: corsList(cors.allowHeaders, 'cors.allowHeaders', (value) => value.toLowerCase()),
          },
  };
}

function corsList(values: unknown, field: string, normalise: (value: string) => string): string[] {
  if (values === undefined) return [];
  if (!Array.isArray(values) || values.length > maxCorsEntries) {
    throw new PlatformError('BAD_REQUEST', `${field} must be a list of at most ${maxCorsEntries} values`);
  }
  return [
    ...new Set(
      values.map((value: unknown) => {
        if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value) || value.length > maxCorsEntryLength) {
          throw new PlatformError(
            'BAD_REQUEST',
            `${field} holds ${JSON.stringify(value)}: each value is visible ASCII without spaces, ${maxCorsEntryLength} characters at most`,
          );
        }
        return normalise(value);
      }),
    ),
  ];
}
