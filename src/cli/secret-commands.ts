// `savassan secret set|ls|rm`: named values that functions' environments refer to (`deploy --secret KEY=NAME`).
// A value is read from a prompt that does not echo it, or from standard input: never from the command line, which
// every local user can read in `ps`.
import type { Command } from 'commander';
import { SavassanClient } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { secretLimits, validateSecretName } from '../core/secrets.js';
import { info, out, printJson, table } from './output.js';

const client = () => new SavassanClient();

/** All of standard input, less one final newline (`echo value |` adds one). */
async function valueFromStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) {
    text += chunk as string;
    // A value is at most 4096 bytes: past that (and its newline), stop reading rather than hold a whole file.
    if (Buffer.byteLength(text) > secretLimits.valueBytes + 2) {
      throw new PlatformError('BAD_REQUEST', `a secret value is at most ${secretLimits.valueBytes} bytes`);
    }
  }
  return text.replace(/\r?\n$/, '');
}

/** A line typed on the terminal without echoing it: Enter ends it, Backspace takes back a character, Ctrl-C cancels. */
async function valueFromPrompt(prompt: string): Promise<string> {
  const { stdin, stderr } = process;
  // No echo from before the prompt shows: what is typed (or pasted) as soon as it appears is not shown either.
  stdin.setRawMode(true);
  stderr.write(prompt);
  stdin.setEncoding('utf8');
  stdin.resume();
  let onData: ((chunk: string) => void) | undefined;
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed: string[] = [];
      onData = (chunk: string): void => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n' || char === '\u0004') return resolve(typed.join(''));
          if (char === '\u0003') return reject(new PlatformError('BAD_REQUEST', 'cancelled: no secret was set'));
          if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
          else typed.push(char);
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    if (onData !== undefined) stdin.off('data', onData);
    stdin.setRawMode(false);
    stdin.pause();
    stderr.write('\n');
  }
}

export function addSecretCommands(program: Command): void {
  const secret = program
    .command('secret')
    .description('manage secrets: values a function gets as environment variables (deploy --secret KEY=NAME)');

  secret
    .command('set')
    .description('create a secret or replace its value: typed at a prompt that does not echo, or read from stdin')
    .argument('<name>', 'secret name: letters, digits and underscores, not starting with a digit')
    .option('--json', 'print {created, secret: {name, createdAt, updatedAt}}')
    .addHelpText(
      'after',
      '\nThe value never goes on the command line. Sandboxes started after it is set get the new value.\n' +
        '\nExamples:\n  savassan secret set STRIPE_KEY\n  savassan secret set DB_PASSWORD < password.txt\n' +
        '  savassan deploy billing ./billing --secret STRIPE_KEY=STRIPE_KEY',
    )
    .action(async (name: string, opts: { json?: boolean }) => {
      validateSecretName(name); // before the value is typed, not after
      const value = process.stdin.isTTY
        ? await valueFromPrompt(`Value of secret ${name} (not shown): `)
        : await valueFromStdin();
      if (value === '') {
        throw new PlatformError(
          'BAD_REQUEST',
          process.stdin.isTTY
            ? 'no value typed: the secret was not set'
            : 'no value on standard input: pipe one in (savassan secret set NAME < file) or run on a terminal',
        );
      }
      const answer = await client().putSecret(name, value);
      if (opts.json === true) return printJson(answer);
      out(`${answer.created ? 'created' : 'updated'} secret ${name}`);
    });

  secret
    .command('ls')
    .description('list secrets and the functions using them (never values)')
    .option('--json', 'print {secrets: [...]} as GET /v1/secrets answers')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listSecrets();
      if (opts.json === true) return printJson(answer);
      if (answer.secrets.length === 0) {
        info('no secrets; set one with: savassan secret set NAME');
        return;
      }
      table([
        ['NAME', 'USED BY', 'UPDATED'],
        ...answer.secrets.map((s) => [s.name, s.usedBy.length === 0 ? '-' : s.usedBy.join(','), s.updatedAt]),
      ]);
    });

  secret
    .command('rm')
    .description('delete a secret (refused while the current version of a function uses it)')
    .argument('<name>', 'secret name')
    .option('--json', 'print {deleted: NAME}')
    .action(async (name: string, opts: { json?: boolean }) => {
      await client().deleteSecret(name);
      if (opts.json === true) printJson({ deleted: name });
      else out(`deleted secret ${name}`);
    });
}
