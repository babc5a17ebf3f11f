import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PlatformError } from '../core/errors.js';
import type { FunctionConfigInput } from '../core/function-config.js';
import type { FunctionConfigPatch } from '../core/function-config-patch.js';
import { configFileName } from './bundle.js';

/**
 * The settings of a `savassan.json` (schema: `schemas/savassan.schema.json`). A field left out keeps the current
 * version's value, `null` restores the default, `env` replaces the whole environment.
 *
 * @example
 * {
 *   "$schema": "../schemas/savassan.schema.json",
 *   "handler": "index.handler",
 *   "env": { "API_URL": "https://api.example.com" },
 *   "timeoutSeconds": 10
 * }
 */
export type DeployConfigFile = FunctionConfigPatch & { secrets?: Record<string, string> | null };

type Check = (value: unknown) => boolean;
const string: Check = (value) => typeof value === 'string';
const integer: Check = (value) => Number.isInteger(value);
const boolean: Check = (value) => typeof value === 'boolean';
const strings: Check = (value) => Array.isArray(value) && value.every(string);
const stringRecord: Check = (value) =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(string);

/** Each field of the file, with what its value must be (besides `null`). */
const fields: Record<string, [Check, string]> = {
  handler: [string, 'a string like "index.handler"'],
  runtime: [string, 'a string ("nodejs20" or "nodejs24")'],
  env: [stringRecord, 'an object of string values'],
  secrets: [stringRecord, 'an object of secret names'],
  timeoutSeconds: [integer, 'an integer'],
  memoryMB: [integer, 'an integer'],
  maxInstances: [integer, 'an integer'],
  minInstances: [integer, 'an integer'],
  idleSeconds: [integer, 'an integer'],
  network: [boolean, 'true or false'],
  allowNet: [strings, 'an array of IPv4 CIDRs'],
  retries: [integer, 'an integer'],
  maxEventAgeSeconds: [integer, 'an integer'],
  retryDelaySeconds: [integer, 'an integer'],
  asyncConcurrency: [integer, 'an integer'],
  onSuccess: [string, 'a function name, queue:NAME or an http(s) URL'],
  onFailure: [string, 'a function name, queue:NAME or an http(s) URL'],
};

/** The fields a `savassan.json` may hold (besides `$schema`), in the order of the deploy options. */
export const deployConfigFields = Object.keys(fields);

/** Names people write for a field, taken from the CLI's options. */
const didYouMean: Record<string, string> = {
  timeout: 'timeoutSeconds',
  memory: 'memoryMB',
  idle: 'idleSeconds',
  'max-instances': 'maxInstances',
  'min-instances': 'minInstances',
  'allow-net': 'allowNet',
  'max-event-age': 'maxEventAgeSeconds',
  'retry-delay': 'retryDelaySeconds',
  'async-concurrency': 'asyncConcurrency',
  'on-success': 'onSuccess',
  'on-failure': 'onFailure',
  environment: 'env',
};

/** Validates the text of a deploy settings file; `source` names it in errors. */
export function parseDeployConfig(text: string, source: string): DeployConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PlatformError('INVALID_CONFIG', `${source} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PlatformError('INVALID_CONFIG', `${source} must hold a JSON object of deploy settings`);
  }
  const unknown = Object.keys(parsed).filter((key) => key !== '$schema' && !(key in fields));
  if (unknown.length > 0) {
    const hints = unknown.flatMap((key) =>
      didYouMean[key] === undefined ? [] : [`"${didYouMean[key]}" for "${key}"`],
    );
    throw new PlatformError(
      'INVALID_CONFIG',
      `${source}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((key) => JSON.stringify(key)).join(', ')}` +
        `${hints.length > 0 ? ` (did you mean ${hints.join(', ')}?)` : ''}; known fields: ${deployConfigFields.join(', ')}`,
    );
  }
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key === '$schema') continue;
    const [check, expected] = fields[key] ?? [() => false, ''];
    if (value !== null && !check(value)) {
      throw new PlatformError(
        'INVALID_CONFIG',
        `${source}: ${key} must be ${expected} or null, got ${JSON.stringify(value)}`,
      );
    }
    config[key] = value;
  }
  return config;
}

/**
 * The deploy settings file: `configFile` when given, else `savassan.json` in the function directory `path`, else
 * null (no file: a `.zip` or a directory without one).
 */
export async function readDeployConfig(path: string, configFile?: string): Promise<DeployConfigFile | null> {
  let file = configFile;
  if (file === undefined) {
    const isDirectory = await stat(path).then(
      (info) => info.isDirectory(),
      () => false,
    );
    if (!isDirectory) return null;
    file = join(path, configFileName);
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (configFile === undefined && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PlatformError('BAD_REQUEST', `cannot read the config file ${file}: ${(err as Error).message}`);
  }
  return parseDeployConfig(text, file);
}

/** What the deploy command's flags set. */
export interface DeployFlags {
  /** Settings given as flags (undefined: not given); `env` and `secrets` are not among them. */
  settings: Omit<FunctionConfigInput, 'env' | 'secrets'>;
  /** Variables to add or replace (`--env-from`, then `--env`). */
  setEnv: Record<string, string>;
  /** Variables to remove (`--unset-env`). */
  unsetEnv: string[];
  /** Variables to take from stored secrets (`--secret KEY=SECRET_NAME`), added to or replacing the current ones. */
  setSecrets: Record<string, string>;
}

/** The current version's environment and secret references (empty for a new function). */
export interface CurrentMaps {
  env: Record<string, string>;
  secrets: Record<string, string>;
}

/**
 * The body of a deploy: flags win over the file, the file over the current version (what the body leaves out, the
 * server keeps). The environment starts from the file's `env` when it has one, else from the current version's,
 * then takes the flags' variables and drops the unset ones; secrets likewise from the file's `secrets` or the
 * current ones, plus `--secret`, and a variable that becomes a secret leaves the environment. Each is sent only
 * when the file or a flag touches it, and `current` is read only then. `notSet` lists unset variables that were
 * not there.
 */
export async function deployPatch(
  file: DeployConfigFile | null,
  flags: DeployFlags,
  current: () => Promise<CurrentMaps>,
): Promise<{ patch: DeployConfigFile; notSet: string[] }> {
  const both = flags.unsetEnv.filter((key) => key in flags.setEnv || key in flags.setSecrets);
  if (both.length > 0) {
    throw new PlatformError('BAD_REQUEST', `${both.join(', ')} is both set (--env, --secret) and unset (--unset-env)`);
  }
  const twice = Object.keys(flags.setEnv).filter((key) => key in flags.setSecrets);
  if (twice.length > 0) {
    throw new PlatformError('BAD_REQUEST', `${twice.join(', ')} is given both as --env and as --secret`);
  }
  const patch: Record<string, unknown> = { ...file };
  for (const [field, value] of Object.entries(flags.settings)) {
    if (value !== undefined) patch[field] = value;
  }
  let notSet: string[] = [];
  const secretKeys = Object.keys(flags.setSecrets);
  const touchesEnv = Object.keys(flags.setEnv).length > 0 || flags.unsetEnv.length > 0 || secretKeys.length > 0;
  if (touchesEnv) {
    let read: CurrentMaps | undefined;
    const now = async (): Promise<CurrentMaps> => (read ??= await current());
    const base = file !== null && file.env !== undefined ? (file.env ?? {}) : (await now()).env;
    notSet = flags.unsetEnv.filter((key) => !(key in base));
    const env = { ...base, ...flags.setEnv };
    for (const key of [...flags.unsetEnv, ...secretKeys]) delete env[key];
    patch.env = env;
    if (secretKeys.length > 0) {
      const secrets = file !== null && file.secrets !== undefined ? (file.secrets ?? {}) : (await now()).secrets;
      patch.secrets = { ...secrets, ...flags.setSecrets };
    }
  }
  return { patch: patch, notSet };
}
