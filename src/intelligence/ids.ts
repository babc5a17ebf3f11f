import { randomBytes } from 'node:crypto';

const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';

/** Kinds of record the intelligence layer names. */
export type IdPrefix = 'plan' | 'cur' | 'img' | 'ds' | 'run';

/** `PREFIX-` and 26 random lowercase base32 characters (130 bits): unguessable, a valid DNS label. */
export function newId(prefix: IdPrefix): string {
  const bytes = randomBytes(26);
  let id = `${prefix}-`;
  for (const byte of bytes) id += alphabet[byte & 31];
  return id;
}

/** Whether `value` has the shape `newId(prefix)` gives. */
export function isId(prefix: IdPrefix, value: string): boolean {
  return new RegExp(`^${prefix}-[a-z2-7]{26}$`).test(value);
}
