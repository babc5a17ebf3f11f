import { validateDnsLabel } from './dns-label.js';
import { PlatformError } from './errors.js';
import { validateSecretName } from './secrets.js';

/** What a user may set when deploying; every field optional. */
export interface FunctionConfigInput {
  handler?: string | undefined;
  runtime?: string | undefined;
  env?: Record<string, string> | undefined;
  timeoutSeconds?: number | undefined;
  memoryMB?: number | undefined;
  maxInstances?: number | undefined;
  minInstances?: number | undefined;
  idleSeconds?: number | undefined;
  network?: boolean | undefined;
  /** IPv4 CIDRs a networked function may reach besides public addresses (private ranges are denied otherwise). */
  allowNet?: string[] | undefined;
  /** Environment variables whose values are secrets: variable name → secret name (see `savassan secret set`). */
  secrets?: Record<string, string> | undefined;
  /** Asynchronous invocations: retries of a function error (0 to 2). */
  retries?: number | undefined;
  /** Asynchronous invocations: how long an event may wait and be retried, in seconds (60 to 21600). */
  maxEventAgeSeconds?: number | undefined;
  /** Asynchronous invocations: the delay before the first retry of a function error, then doubled (seconds). */
  retryDelaySeconds?: number | undefined;
  /** Asynchronous invocations run at once, at most, per dispatcher. */
  asyncConcurrency?: number | undefined;
  /** Where an asynchronous invocation's record goes when it succeeds: see `parseDestination`. Null: nowhere. */
  onSuccess?: string | null | undefined;
  /** Where an asynchronous invocation's record goes when it fails for good (instead of the dead letters). */
  onFailure?: string | null | undefined;
}

/** Validated, defaulted configuration of one function version. Immutable once deployed. */
export interface FunctionConfig {
  handler: string;
  runtime: string;
  env: Record<string, string>;
  timeoutSeconds: number;
  memoryMB: number;
  maxInstances: number;
  minInstances: number;
  idleSeconds: number;
  /** Whether the function may reach the network; isolating sandboxes have none otherwise. */
  network: boolean;
  /** IPv4 CIDRs (canonical, sorted, unique) a networked function may reach although they are denied by default. */
  allowNet: string[];
  /**
   * Environment variables whose values are secrets, by name: variable → secret name, sorted by variable. Only names
   * are stored with the version; each sandbox gets the secrets' values when it starts (`SandboxSpec.secretEnv`).
   */
  secrets: Record<string, string>;
  /** Retries of an asynchronous invocation whose function failed (error, timeout, crash, out of memory). */
  retries: number;
  /** An asynchronous invocation older than this (seconds since it was accepted) is not run or retried any more. */
  maxEventAgeSeconds: number;
  /** Delay before the first retry of a function error (seconds; doubled for the next, with jitter). */
  retryDelaySeconds: number;
  /** Asynchronous invocations of the function one dispatcher runs at once. */
  asyncConcurrency: number;
  /** Destination of the records of asynchronous invocations that succeeded, or null. */
  onSuccess: string | null;
  /** Destination of the records of asynchronous invocations that failed for good, or null (dead letters). */
  onFailure: string | null;
}

/** The settings of asynchronous invocations: the dispatcher's, never a sandbox's. */
export type AsyncSettings = Pick<
  FunctionConfig,
  'retries' | 'maxEventAgeSeconds' | 'retryDelaySeconds' | 'asyncConcurrency' | 'onSuccess' | 'onFailure'
>;

/** What a sandbox is created with: a version's settings less those of asynchronous invocations. */
export type SandboxConfig = Omit<FunctionConfig, keyof AsyncSettings>;

export const functionLimits = {
  timeoutSeconds: { min: 1, max: 900, default: 30 },
  memoryMB: { min: 64, max: 10240, default: 256 },
  maxInstances: { min: 1, max: 1000, default: 10 },
  minInstances: { min: 0, max: 100, default: 0 },
  idleSeconds: { min: 1, max: 86400, default: 300 },
  retries: { min: 0, max: 2, default: 2 },
  maxEventAgeSeconds: { min: 60, max: 21600, default: 21600 },
  retryDelaySeconds: { min: 1, max: 3600, default: 60 },
  asyncConcurrency: { min: 1, max: 1000, default: 10 },
  envBytes: 4096,
  allowNet: 32,
  secrets: 64,
} as const;

/** Largest invocation event and result, as with AWS Lambda's synchronous invoke. */
export const maxEventBytes = 6 * 1024 * 1024;

export const runtimes = ['nodejs20', 'nodejs24'] as const;
export const defaultRuntime = 'nodejs20';

const handlerPattern = /^[A-Za-z0-9_\-/]+(?:\.[A-Za-z0-9_-]+)*\.[A-Za-z_$][A-Za-z0-9_$]*$/;
const envKeyPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const reservedEnvPrefixes = ['SAVASSAN_', 'AWS_LAMBDA_'];

/**
 * Variables Node reads only as it starts, or once when first needed, which a pre-started sandbox (a stem cell) has
 * done before it knows its function. A function whose env holds one of them gets a sandbox started for it, its code
 * in place and these variables in its environment from the start, rather than a stem cell; other variables are set
 * when the function is loaded. (`TZ` is not here: Node applies a new `process.env.TZ` at once.)
 */
export const startupEnvVariables: readonly string[] = [
  'NODE_OPTIONS',
  'NODE_EXTRA_CA_CERTS',
  'NODE_PATH',
  'NODE_ICU_DATA',
  'NODE_NO_WARNINGS',
  'NODE_PENDING_DEPRECATION',
  'NODE_PRESERVE_SYMLINKS',
  'NODE_REDIRECT_WARNINGS',
  'NODE_V8_COVERAGE',
  'NODE_DEBUG',
  'NODE_DEBUG_NATIVE',
  'NODE_COMPILE_CACHE',
  'NODE_USE_ENV_PROXY',
  'NODE_USE_SYSTEM_CA',
  'OPENSSL_CONF',
  'SSL_CERT_DIR',
  'SSL_CERT_FILE',
  'UV_THREADPOOL_SIZE',
  'UV_USE_IO_URING',
];

/** The start-up variables (`startupEnvVariables`) of a function's env; empty for most functions. */
export function startupEnv(config: Pick<FunctionConfig, 'env'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of startupEnvVariables) {
    const value = config.env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Node options a function may not set in NODE_OPTIONS, and why. */
const refusedNodeOptions: { pattern: RegExp; reason: string }[] = [
  {
    pattern: /^--(?:inspect|debug-port)/,
    reason: 'it opens the inspector, whose port lets whoever reaches it run any code in the sandbox',
  },
  {
    pattern: /^--max-(?:old|semi)-space-size$/,
    reason: "the platform sizes the V8 heap from the function's memoryMB: deploy with a different memoryMB instead",
  },
  {
    pattern: /^--(?:report|diagnostic-dir)/,
    reason: "a diagnostic report holds the whole environment, secrets included, and lands in the function's log",
  },
  {
    pattern: /^--(?:experimental-permission|permission|allow-)/,
    reason: "Node's permission model would confine the platform's guest code too; the sandbox confines the function",
  },
];

/** Split NODE_OPTIONS as Node does: on spaces outside double quotes, a backslash escaping a character in quotes. */
function splitNodeOptions(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quoted = false;
  for (let at = 0; at < text.length; at += 1) {
    let char = text.charAt(at);
    if (quoted && char === '\\' && at + 1 < text.length) {
      at += 1;
      char = text.charAt(at);
    } else if (char === '"') {
      quoted = !quoted;
      word ??= '';
      continue;
    } else if (!quoted && /\s/.test(char)) {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    word = (word ?? '') + char;
  }
  if (quoted) throw new PlatformError('INVALID_CONFIG', 'NODE_OPTIONS has an unterminated quoted string');
  if (word !== null) words.push(word);
  return words;
}

/**
 * Check NODE_OPTIONS: each option one Node accepts there (`process.allowedNodeEnvironmentFlags`), none of
 * `refusedNodeOptions`; a word that is not an option is the value of the one before it (`-r ./setup.js`).
 */
function validateNodeOptions(text: string): void {
  let afterOption = false;
  for (const word of splitNodeOptions(text)) {
    if (!word.startsWith('-')) {
      if (!afterOption) {
        throw new PlatformError('INVALID_CONFIG', `NODE_OPTIONS holds ${JSON.stringify(word)}, which is not an option`);
      }
      afterOption = false;
      continue;
    }
    afterOption = true;
    const name = word.split('=', 1)[0] ?? word;
    const canonical = name.startsWith('--') ? `--${name.slice(2).replaceAll('_', '-')}` : name;
    const refused = refusedNodeOptions.find((option) => option.pattern.test(canonical));
    if (refused !== undefined) {
      throw new PlatformError('INVALID_CONFIG', `NODE_OPTIONS may not hold ${name}: ${refused.reason}`);
    }
    if (!process.allowedNodeEnvironmentFlags.has(name)) {
      throw new PlatformError('INVALID_CONFIG', `NODE_OPTIONS may not hold ${name}: Node does not take it there`);
    }
  }
}

/** Function names: lowercase letters, digits and dashes, starting with a letter, at most 63 characters. */
export function validateFunctionName(name: unknown): string {
  return validateDnsLabel(name, 'function', 'INVALID_NAME');
}

function intInRange(field: keyof typeof functionLimits, value: unknown): number {
  const limits = functionLimits[field];
  if (typeof limits === 'number') throw new Error('unreachable');
  if (value === undefined) return limits.default;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < limits.min || value > limits.max) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `${field} must be an integer from ${limits.min} to ${limits.max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Validate and default a deploy's settings once, at the edge. */
export function compileFunctionConfig(input: FunctionConfigInput): FunctionConfig {
  const handler = input.handler ?? 'index.handler';
  if (typeof handler !== 'string' || !handlerPattern.test(handler) || handler.includes('..')) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `handler must look like "file.export" (e.g. "index.handler" or "src/app.main"), got ${JSON.stringify(handler)}`,
    );
  }
  const runtime = input.runtime ?? defaultRuntime;
  if (!(runtimes as readonly string[]).includes(runtime)) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `runtime must be one of ${runtimes.join(', ')}, got ${JSON.stringify(runtime)}`,
    );
  }
  const env: Record<string, string> = {};
  let envBytes = 0;
  for (const [key, value] of Object.entries(input.env ?? {})) {
    validEnvKey(key, 'environment variable');
    if (typeof value !== 'string') {
      throw new PlatformError('INVALID_CONFIG', `environment variable ${key} must be a string`);
    }
    if (key === 'NODE_OPTIONS') validateNodeOptions(value);
    envBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
    env[key] = value;
  }
  if (envBytes > functionLimits.envBytes) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `environment variables total ${envBytes} bytes, over the ${functionLimits.envBytes}-byte limit`,
    );
  }
  const secrets = compileSecrets(input.secrets, env);
  const maxInstances = intInRange('maxInstances', input.maxInstances);
  const minInstances = intInRange('minInstances', input.minInstances);
  if (minInstances > maxInstances) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `minInstances (${minInstances}) cannot exceed maxInstances (${maxInstances})`,
    );
  }
  const network = input.network ?? false;
  if (typeof network !== 'boolean') {
    throw new PlatformError('INVALID_CONFIG', `network must be true or false, got ${JSON.stringify(network)}`);
  }
  const allowNet = compileAllowNet(input.allowNet, network);
  return {
    handler,
    runtime,
    env,
    timeoutSeconds: intInRange('timeoutSeconds', input.timeoutSeconds),
    memoryMB: intInRange('memoryMB', input.memoryMB),
    maxInstances,
    minInstances,
    idleSeconds: intInRange('idleSeconds', input.idleSeconds),
    network,
    allowNet,
    secrets,
    retries: intInRange('retries', input.retries),
    maxEventAgeSeconds: intInRange('maxEventAgeSeconds', input.maxEventAgeSeconds),
    retryDelaySeconds: intInRange('retryDelaySeconds', input.retryDelaySeconds),
    asyncConcurrency: intInRange('asyncConcurrency', input.asyncConcurrency),
    onSuccess: compileDestination('onSuccess', input.onSuccess),
    onFailure: compileDestination('onFailure', input.onFailure),
  };
}

/** Where the record of an asynchronous invocation goes: another function, a webhook, or a queue. */
export type Destination =
  { kind: 'function'; name: string } | { kind: 'webhook'; url: URL } | { kind: 'queue'; name: string };

/**
 * A destination as given: `https://…` or `http://…` (a webhook, POSTed the record), `queue:NAME` (a queue), or a
 * function name (optionally `function:NAME`). A webhook URL is shown with the function's settings, so it may not hold
 * a user name or password.
 */
export function parseDestination(text: string): Destination {
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new PlatformError('INVALID_CONFIG', `destination ${JSON.stringify(text)} is not a valid URL`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new PlatformError('INVALID_CONFIG', 'a destination URL may not hold a user name or password');
    }
    return { kind: 'webhook', url };
  }
  if (text.startsWith('queue:')) {
    return { kind: 'queue', name: validateDnsLabel(text.slice('queue:'.length), 'queue', 'INVALID_CONFIG') };
  }
  const name = text.startsWith('function:') ? text.slice('function:'.length) : text;
  return { kind: 'function', name: validateDnsLabel(name, 'function', 'INVALID_CONFIG') };
}

const maxDestinationLength = 2048;

function compileDestination(field: 'onSuccess' | 'onFailure', input: unknown): string | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'string' || input.length === 0 || input.length > maxDestinationLength) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `${field} must be a function name, queue:NAME or an http(s) URL of at most ${maxDestinationLength} characters`,
    );
  }
  try {
    parseDestination(input);
  } catch (err) {
    throw new PlatformError('INVALID_CONFIG', `${field}: ${(err as PlatformError).rawMessage}`);
  }
  return input;
}

function validEnvKey(key: string, what: string): void {
  if (!envKeyPattern.test(key)) {
    throw new PlatformError('INVALID_CONFIG', `${what} name ${JSON.stringify(key)} is not valid`);
  }
  if (reservedEnvPrefixes.some((prefix) => key.startsWith(prefix))) {
    throw new PlatformError('INVALID_CONFIG', `environment variable ${key} is reserved by the platform`);
  }
}

/** Variable → secret name, sorted by variable; a variable is either in `env` or here, never both. */
function compileSecrets(input: unknown, env: Record<string, string>): Record<string, string> {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new PlatformError('INVALID_CONFIG', 'secrets must be an object of VARIABLE: SECRET_NAME');
  }
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > functionLimits.secrets) {
    throw new PlatformError('INVALID_CONFIG', `a function uses at most ${functionLimits.secrets} secrets`);
  }
  const secrets: Record<string, string> = {};
  for (const [key, name] of entries.sort(([a], [b]) => (a < b ? -1 : 1))) {
    validEnvKey(key, 'secret variable');
    if (startupEnvVariables.includes(key)) {
      throw new PlatformError(
        'INVALID_CONFIG',
        `${key} is read by Node as it starts, before secrets are set: give it as a plain environment variable`,
      );
    }
    if (Object.hasOwn(env, key)) {
      throw new PlatformError('INVALID_CONFIG', `environment variable ${key} is given both a value and a secret`);
    }
    try {
      secrets[key] = validateSecretName(name);
    } catch (err) {
      throw new PlatformError('INVALID_CONFIG', `environment variable ${key}: ${(err as PlatformError).rawMessage}`);
    }
  }
  return secrets;
}

/** An IPv4 network in CIDR notation: its first address as a number, the prefix length, and the canonical text. */
export interface Ipv4Cidr {
  base: number;
  prefix: number;
  text: string;
}

const octet = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const cidrPattern = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}/(3[0-2]|[12]?[0-9])$`);

/** Parse `a.b.c.d/n` strictly (decimal octets without leading zeros, no host bits set), or null. */
export function ipv4Cidr(text: string): Ipv4Cidr | null {
  const match = cidrPattern.exec(text);
  if (match === null) return null;
  const [a, b, c, d, prefix] = match.slice(1).map(Number) as [number, number, number, number, number];
  const address = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((address & mask) >>> 0 !== address) return null;
  return { base: address, prefix, text };
}

function compileAllowNet(input: unknown, network: boolean): string[] {
  if (input === undefined) return [];
  if (!Array.isArray(input)) {
    throw new PlatformError('INVALID_CONFIG', `allowNet must be an array of IPv4 CIDRs, got ${JSON.stringify(input)}`);
  }
  if (input.length > 0 && !network) {
    throw new PlatformError('INVALID_CONFIG', 'allowNet needs network: true (--allow-net needs --network)');
  }
  if (input.length > functionLimits.allowNet) {
    throw new PlatformError('INVALID_CONFIG', `allowNet holds at most ${functionLimits.allowNet} CIDRs`);
  }
  const cidrs = new Set<string>();
  for (const entry of input as unknown[]) {
    if (typeof entry !== 'string' || ipv4Cidr(entry) === null) {
      throw new PlatformError(
        'INVALID_CONFIG',
        `allowNet entries must be IPv4 CIDRs with no host bits set (like "10.1.2.0/24"), got ${JSON.stringify(entry)}`,
      );
    }
    cidrs.add(entry);
  }
  return [...cidrs].sort();
}
