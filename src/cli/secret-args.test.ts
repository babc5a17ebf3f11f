import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { isPlatformError } from '../core/errors.js';
import { addClusterCommands } from './cluster-commands.js';
import { readSecretFile, refuseSecretArgs } from './secret-args.js';
import { addStartCommand } from './start-command.js';

/** Parses `args` with the cluster and start commands; resolves with the error the preAction check threw. */
async function refusal(args: string[], env: Record<string, string> = {}): Promise<string> {
  const program = new Command().exitOverride();
  addClusterCommands(program);
  addStartCommand(program);
  // Should the check let a secret through, the refusal fails without starting a platform.
  program.commands.find((command) => command.name() === 'start')?.action(() => undefined);
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    await program.parseAsync(['node', 'savassan', ...args]);
  } catch (err) {
    assert.ok(isPlatformError(err, 'INVALID_CONFIG'), String(err));
    return err.rawMessage;
  } finally {
    process.env = saved;
  }
  assert.fail(`savassan ${args.join(' ')} was accepted`);
}

describe('secrets on the command line', () => {
  it('refuses --token, --api-key and URLs with a password, naming what to use instead', async () => {
    assert.equal(
      await refusal(['agent', '--token', 'secret-token']),
      '--token would be visible to every local user in ps: set SAVASSAN_CLUSTER_TOKEN or pass --token-file FILE instead',
    );
    assert.match(
      await refusal(['gateway', '--api-key', 'k1', '--token-file', '/nonexistent']),
      /^--api-key would be visible to every local user in ps: set SAVASSAN_API_KEY or pass --api-key-file FILE/,
    );
    for (const [flag, url, env] of [
      ['--redis', 'redis://:hunter2@127.0.0.1:6379/0', 'SAVASSAN_REDIS_URL'],
      ['--db', 'postgres://savassan:hunter2@127.0.0.1/savassan', 'SAVASSAN_DB_URL'],
      ['--s3', 'http://key:hunter2@127.0.0.1:9000/bucket', 'SAVASSAN_S3_URL'],
    ] as const) {
      const message = await refusal(['manager', flag, url]);
      assert.equal(
        message,
        `${flag} with a password in the URL would be visible to every local user in ps: set ${env} instead`,
      );
      assert.doesNotMatch(message, /hunter2/);
    }
  });

  it('refuses the intelligence URLs with a password or a secret in the query', async () => {
    for (const [args, flag, env] of [
      [
        ['--vector-store', 'postgres', '--vector-store-url', 'postgres://u:hunter2@127.0.0.1/vectors'],
        '--vector-store-url',
        'SAVASSAN_VECTOR_STORE_URL',
      ],
      [
        ['--vector-store', 'postgres', '--vector-store-url', 'postgres://u@127.0.0.1/vectors?password=hunter2'],
        '--vector-store-url',
        'SAVASSAN_VECTOR_STORE_URL',
      ],
      [
        ['--llm', 'openai', '--llm-model', 'm', '--llm-url', 'http://u:hunter2@127.0.0.1:8000/v1'],
        '--llm-url',
        'SAVASSAN_LLM_API_KEY',
      ],
      [
        ['--llm', 'openai', '--llm-model', 'm', '--llm-url', 'http://127.0.0.1:8000/v1?api-key=hunter2'],
        '--llm-url',
        'SAVASSAN_LLM_API_KEY',
      ],
    ] as const) {
      const message = await refusal(['start', ...args]);
      assert.equal(
        message,
        `${flag} with a password in the URL would be visible to every local user in ps: set ${env} instead`,
      );
      assert.doesNotMatch(message, /hunter2/);
    }
  });

  it('takes the same values from the environment, and URLs without a password from flags', () => {
    const command = new Command()
      .option('--token <t>')
      .option('--redis <url>')
      .option('--s3 <url>')
      .option('--db <url>');
    command.setOptionValueWithSource('token', 'from-env', 'env');
    command.setOptionValueWithSource('db', 'postgres://u:pw@host/db', 'env');
    command.setOptionValueWithSource('redis', 'redis://127.0.0.1:6379/0', 'cli');
    command.setOptionValueWithSource('s3', 'http://127.0.0.1:9000/bucket?createBucket=true', 'cli');
    refuseSecretArgs(command);
    command.setOptionValueWithSource('s3', 'http://127.0.0.1:9000/bucket?secretAccessKey=x', 'cli');
    assert.throws(() => refuseSecretArgs(command), /--s3 with a password in the URL/);
  });

  it('reads secret files without their final newline, and says which file is missing or empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sv-secret-'));
    try {
      await writeFile(join(dir, 'token'), 'the-token\n', { mode: 0o600 });
      await writeFile(join(dir, 'empty'), '\n');
      assert.equal(readSecretFile(join(dir, 'token'), 'cluster token'), 'the-token');
      assert.throws(
        () => readSecretFile(join(dir, 'empty'), 'cluster token'),
        /the cluster token file .*empty is empty/,
      );
      assert.throws(
        () => readSecretFile(join(dir, 'missing'), 'cluster token'),
        /cannot read the cluster token from .*missing: ENOENT/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
