import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';

/**
 * Variables from an env file: `KEY=VALUE` lines (an optional `export ` before the key), `#` comments and blank
 * lines; a value in single quotes is taken as written, one in double quotes understands `\n`, `\"` and `\\`.
 * Secrets belong here rather than in `--env K=V`: command-line arguments are visible to every local user.
 *
 * @example
 * # .env
 * export API_URL=https://api.example.com
 * API_TOKEN="s3cr3t"
 */
export function parseEnvFile(text: string, source: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([^=\s]+)\s*=\s*(.*)$/.exec(line);
    if (match === null) throw new InvalidArgumentError(`${source}:${index + 1}: expected KEY=VALUE`);
    const [, key = '', rest = ''] = match;
    env[key] = unquote(rest, `${source}:${index + 1}`);
  }
  return env;
}

function unquote(value: string, where: string): string {
  const quote = value[0];
  if (quote !== '"' && quote !== "'") return value;
  if (value.length < 2 || !value.endsWith(quote)) throw new InvalidArgumentError(`${where}: unterminated ${quote}`);
  const body = value.slice(1, -1);
  if (quote === "'") return body;
  return body.replace(/\\(.)/g, (_, char: string) => (char === 'n' ? '\n' : char));
}

/** Reads and parses an env file (`--env-from`). */
export async function readEnvFile(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the env file ${path}: ${(err as Error).message}`);
  }
  return parseEnvFile(text, path);
}
