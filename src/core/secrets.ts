import { PlatformError } from './errors.js';
import type { MetadataStore } from './ports/metadata-store.js';

/** Bounds of a secret: its name's length, and its value's size in UTF-8 bytes. */
export const secretLimits = { nameLength: 128, valueBytes: 4096 } as const;

/** Secret names look like environment variable names: `STRIPE_KEY`, `db_password`. */
const secretNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A secret name: letters, digits and underscores, not starting with a digit, at most 128 characters. */
export function validateSecretName(name: unknown): string {
  if (typeof name !== 'string' || name.length > secretLimits.nameLength || !secretNamePattern.test(name)) {
    throw new PlatformError(
      'INVALID_NAME',
      `invalid secret name ${JSON.stringify(typeof name === 'string' ? name.slice(0, 200) : name)}: use 1-${secretLimits.nameLength} letters, digits or underscores, not starting with a digit`,
    );
  }
  return name;
}

/**
 * A secret value: 1 to 4096 bytes of UTF-8 without NUL (it becomes an environment variable). The messages never
 * quote the value.
 */
export function validateSecretValue(value: unknown): string {
  if (typeof value !== 'string') throw new PlatformError('BAD_REQUEST', 'a secret value must be a string');
  const bytes = Buffer.byteLength(value);
  if (bytes === 0) throw new PlatformError('BAD_REQUEST', 'a secret value must not be empty');
  if (bytes > secretLimits.valueBytes) {
    throw new PlatformError(
      'BAD_REQUEST',
      `the secret value is ${bytes} bytes, over the ${secretLimits.valueBytes}-byte limit`,
    );
  }
  if (value.includes('\0')) {
    throw new PlatformError(
      'BAD_REQUEST',
      'a secret value must not hold a NUL character (it becomes an environment variable)',
    );
  }
  return value;
}

/**
 * The environment variables a sandbox of a function gets from secrets: `secrets` (variable → secret name) with each
 * name replaced by the secret's value, read now; undefined when the function uses none. Throws INVALID_CONFIG naming
 * the secrets that do not exist (never a value).
 */
export async function secretEnvOf(
  metadata: Pick<MetadataStore, 'secretValues'>,
  functionName: string,
  secrets: Readonly<Record<string, string>>,
): Promise<Record<string, string> | undefined> {
  const variables = Object.entries(secrets);
  if (variables.length === 0) return undefined;
  const values = await metadata.secretValues(variables.map(([, name]) => name));
  const env: Record<string, string> = {};
  const missing = new Set<string>();
  for (const [variable, name] of variables) {
    const value = values.get(name);
    if (value === undefined) missing.add(name);
    else env[variable] = value;
  }
  if (missing.size > 0) {
    const names = [...missing].sort();
    throw new PlatformError(
      'INVALID_CONFIG',
      `function ${functionName} uses ${names.length === 1 ? 'a secret that does' : 'secrets that do'} not exist: ${names.join(', ')} (set ${names.length === 1 ? 'it' : 'them'} with: savassan secret set NAME)`,
      { details: { missingSecrets: names } },
    );
  }
  return env;
}
