// Secrets never come from the command line: every local user can read a process's arguments (`ps`,
// /proc/PID/cmdline). Flags that would carry one refuse, naming the environment variable or file flag to use.
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { PlatformError } from '../core/errors.js';

/** Option (commander's camelCase name) → how to give it instead, and whether any value is a secret or only a URL's password. */
const secretOptions: Record<string, { flag: string; instead: string; whole: boolean }> = {
  token: { flag: '--token', instead: 'set SAVASSAN_CLUSTER_TOKEN or pass --token-file FILE', whole: true },
  apiKey: { flag: '--api-key', instead: 'set SAVASSAN_API_KEY or pass --api-key-file FILE', whole: true },
  redis: { flag: '--redis', instead: 'set SAVASSAN_REDIS_URL', whole: false },
  db: { flag: '--db', instead: 'set SAVASSAN_DB_URL', whole: false },
  s3: { flag: '--s3', instead: 'set SAVASSAN_S3_URL', whole: false },
  vectorStoreUrl: { flag: '--vector-store-url', instead: 'set SAVASSAN_VECTOR_STORE_URL', whole: false },
  llmUrl: { flag: '--llm-url', instead: 'set SAVASSAN_LLM_API_KEY', whole: false },
};

/** Whether a URL carries a password (`scheme://user:PASSWORD@host`) or a secret in its query. */
function urlCarriesSecret(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Not a URL the adapters take either; a `user:pw@` in it is still a secret.
    return /:[^/@]*[^/@:]@/.test(value);
  }
  if (url.password !== '') return true;
  return [...url.searchParams.keys()].some((key) => /secret|password|token|key/i.test(key));
}

/**
 * Throws INVALID_CONFIG, in one line, when a secret came from `command`'s arguments rather than the environment or
 * a file: `--token` or `--api-key` with any value; `--redis`, `--db`, `--s3`, `--vector-store-url` or `--llm-url` with
 * a URL that carries a password or a secret in its query.
 * Options the command does not have are ignored. Call it first in an action (or in a `preAction` hook).
 *
 * @example
 * program.hook('preAction', (_program, action) => refuseSecretArgs(action));
 */
export function refuseSecretArgs(command: Command): void {
  const values = command.opts();
  for (const [name, secret] of Object.entries(secretOptions)) {
    if (command.getOptionValueSource(name) !== 'cli') continue;
    const value: unknown = values[name];
    const given = Array.isArray(value) ? value.map(String) : [String(value)];
    if (secret.whole || given.some(urlCarriesSecret)) {
      const what = secret.whole ? secret.flag : `${secret.flag} with a password in the URL`;
      throw new PlatformError(
        'INVALID_CONFIG',
        `${what} would be visible to every local user in ps: ${secret.instead} instead`,
      );
    }
  }
}

/** The bytes of a file a flag names (a secret, a certificate), or INVALID_CONFIG naming `what` and the file. */
export function readNamedFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new PlatformError('INVALID_CONFIG', `cannot read the ${what} from ${path}: ${reason}`, { cause: err });
  }
}

/** The secret in `path` (a `--token-file`, `--api-key-file`, `--etcd-password-file`), without the final newline. */
export function readSecretFile(path: string, what: string): string {
  const secret = readNamedFile(path, what)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (secret.trim() === '') throw new PlatformError('INVALID_CONFIG', `the ${what} file ${path} is empty`);
  return secret;
}

/**
 * Adds the API key options of a server command: `--api-key-file FILE` (`SAVASSAN_API_KEY_FILE`; keys separated by
 * spaces or newlines) and `SAVASSAN_API_KEY=K1,K2`; `--api-key` itself is hidden and refused by `refuseSecretArgs`.
 */
export function withApiKeyOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--api-key <key>', 'refused: API keys come from SAVASSAN_API_KEY or --api-key-file')
        .env('SAVASSAN_API_KEY')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
        .hideHelp(),
    )
    .addOption(
      new Option(
        '--api-key-file <file>',
        'file of API keys callers must present, one a line (or set SAVASSAN_API_KEY=K1,K2); needed off loopback',
      ).env('SAVASSAN_API_KEY_FILE'),
    );
}

/** The keys `withApiKeyOptions` gave: the file's when one is named, else the environment's. */
export function apiKeysFrom(opts: { apiKey?: string[] | undefined; apiKeyFile?: string | undefined }): string[] {
  if (opts.apiKeyFile === undefined) return opts.apiKey ?? [];
  return readSecretFile(opts.apiKeyFile, 'API keys')
    .split(/\s+/)
    .filter((key) => key !== '');
}
