// `savassan deploy`: packs a directory (or takes a .zip) and creates a new version with its settings.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { ApiError, SavassanClient } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { deployPatch, readDeployConfig } from '../client/deploy-config.js';
import type { CurrentMaps, DeployFlags } from '../client/deploy-config.js';
import { changeLines } from './change-lines.js';
import { readEnvFile } from './env-file.js';
import { canarySteps } from '../core/rollouts.js';
import { durationSeconds, info, integer, out, printJson, repeated } from './output.js';
import { rolloutLine } from './rollout-commands.js';

function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got ${value}`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** `--env-from` then `--env` (a flag wins over the file); undefined when neither is given. */
async function deployEnv(
  file: string | undefined,
  flags: Record<string, string> | undefined,
): Promise<Record<string, string> | undefined> {
  if (file === undefined) return flags;
  return { ...(await readEnvFile(file)), ...flags };
}

/** The current version's environment, to add `--env` to or remove `--unset-env` from; empty for a new function. */
async function currentMaps(client: SavassanClient, name: string): Promise<CurrentMaps> {
  try {
    const { config } = await client.getFunction(name);
    return { env: config?.env ?? {}, secrets: config?.secrets ?? {} };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { env: {}, secrets: {} };
    throw err;
  }
}

/** `--on-success X` → X, `--no-on-success` → null (none), neither → undefined (kept). */
function destinationFlag(value: unknown): string | null | undefined {
  if (value === false) return null;
  return typeof value === 'string' ? value : undefined;
}

export function addDeployCommand(program: Command): void {
  program
    .command('deploy')
    .description('deploy a function from a directory or .zip (creates a new immutable version)')
    .argument('<name>', 'function name')
    .argument('<path>', 'directory or .zip holding the code and its node_modules')
    .option('--handler <file.export>', 'handler (default index.handler)')
    .option('--runtime <runtime>', 'runtime: nodejs20 or nodejs24 (default nodejs20)')
    .option('--env <KEY=VALUE>', 'environment variable (repeatable)', keyValue)
    .option('--env-from <file>', 'environment variables from a file of KEY=VALUE lines (for secrets: argv is public)')
    .option('--unset-env <KEY>', 'remove an environment variable the function has (repeatable)', repeated)
    .option(
      '--secret <KEY=SECRET_NAME>',
      'environment variable KEY gets the value of secret SECRET_NAME when a sandbox starts (repeatable; see secret set)',
      keyValue,
    )
    .option('--config <file>', 'deploy settings file (default: savassan.json in the directory, if there)')
    .option('--timeout <seconds>', 'timeout in seconds (default 30)', integer)
    .option('--memory <mb>', 'memory limit in MB (default 256)', integer)
    .option('--max-instances <n>', 'max concurrent instances (default 10)', integer)
    .option('--min-instances <n>', 'instances kept warm (default 0)', integer)
    .option('--idle <seconds>', 'keep-alive of an idle instance (default 300)', integer)
    .option('--network', 'let the function reach the network (isolating sandboxes have none otherwise)')
    .option('--no-network', 'take the network away from a function that has it')
    .option(
      '--allow-net <cidr>',
      'with --network, an IPv4 CIDR the function may reach although private ranges are denied (repeatable)',
      repeated,
    )
    .option('--retries <n>', 'asynchronous invocations: retries of a function error, 0 to 2 (default 2)', integer)
    .option(
      '--max-event-age <duration>',
      'asynchronous invocations: not run or retried once this old, 60s to 6h (default 6h)',
      durationSeconds,
    )
    .option(
      '--retry-delay <seconds>',
      'asynchronous invocations: delay before the first retry of a function error, then doubled (default 60)',
      integer,
    )
    .option('--async-concurrency <n>', 'asynchronous invocations run at once by each dispatcher (default 10)', integer)
    .option(
      '--on-success <destination>',
      'asynchronous invocations that succeed: their record goes to a function, queue:NAME or an http(s) URL',
    )
    .option('--no-on-success', 'no destination for asynchronous invocations that succeed')
    .option(
      '--on-failure <destination>',
      'asynchronous invocations that fail for good: their record goes to a function, queue:NAME or an http(s) URL ' +
        '(default: the dead letters, see dlq)',
    )
    .option('--no-on-failure', 'failed asynchronous invocations go to the dead letters again')
    .option('--no-promote', 'create the version without moving traffic to it (alias set or rollout start does later)')
    .option(
      '--canary <percent>',
      'create the version without traffic, then start a rollout at this share followed by the default steps above it',
      integer,
    )
    .option(
      '--rollback-window <seconds>',
      "with --canary: keep the baseline's warm instances this long after promotion (default 600)",
      integer,
    )
    .option(
      '--json',
      'print {created, function, version, changes} as PUT /v1/functions/NAME answers (with --canary, and rollout)',
    )
    .addHelpText(
      'after',
      "\nA setting not given keeps the current version's value (the defaults above are a new function's).\n" +
        'Flags win over savassan.json, which wins over the current version; its env replaces the current one,\n' +
        'then --env-from and --env add variables and --unset-env removes them. A .savassanignore in the\n' +
        'directory lists files to leave out of the bundle (gitignore-style patterns).\n' +
        '\nExamples:\n  savassan deploy hello ./examples/hello\n  savassan deploy api ./api --timeout 10 --memory 512 --env-from api.env --network' +
        '\n  savassan deploy api ./api --unset-env DEBUG' +
        '\n  savassan deploy api ./api --canary 5   # 5%, then 10, 50, 100 if each step holds',
    )
    .action(async (name: string, path: string, opts: Record<string, unknown>) => {
      const client = new SavassanClient();
      const canary = opts.canary as number | undefined;
      const rollbackWindow = opts.rollbackWindow as number | undefined;
      // Checked before anything is packed or sent.
      const steps = canary === undefined ? undefined : canarySteps(canary);
      if (rollbackWindow !== undefined && canary === undefined) {
        throw new PlatformError('BAD_REQUEST', '--rollback-window goes with --canary (or rollout start)');
      }
      const promote = opts.promote !== false && canary === undefined;
      const flags: DeployFlags = {
        settings: {
          handler: opts.handler as string | undefined,
          runtime: opts.runtime as string | undefined,
          timeoutSeconds: opts.timeout as number | undefined,
          memoryMB: opts.memory as number | undefined,
          maxInstances: opts.maxInstances as number | undefined,
          minInstances: opts.minInstances as number | undefined,
          idleSeconds: opts.idle as number | undefined,
          network: opts.network as boolean | undefined,
          allowNet: opts.allowNet as string[] | undefined,
          retries: opts.retries as number | undefined,
          maxEventAgeSeconds: opts.maxEventAge as number | undefined,
          retryDelaySeconds: opts.retryDelay as number | undefined,
          asyncConcurrency: opts.asyncConcurrency as number | undefined,
          onSuccess: destinationFlag(opts.onSuccess),
          onFailure: destinationFlag(opts.onFailure),
        },
        setEnv:
          (await deployEnv(opts.envFrom as string | undefined, opts.env as Record<string, string> | undefined)) ?? {},
        unsetEnv: (opts.unsetEnv as string[] | undefined) ?? [],
        setSecrets: (opts.secret as Record<string, string> | undefined) ?? {},
      };
      // The zip library is loaded by the one command that packs a bundle, not by every command.
      const { readBundle } = await import('../client/bundle.js');
      const bundle = await readBundle(path);
      const file = await readDeployConfig(path, opts.config as string | undefined);
      const { patch, notSet } = await deployPatch(file, flags, () => currentMaps(client, name));
      for (const key of notSet) info(`--unset-env ${key}: ${name} has no such variable`);
      const answer = await client.deploy(name, bundle, patch, { promote });
      const version = answer.version.version;
      if (steps === undefined || !answer.created) {
        if (opts.json === true) return printJson(answer);
        if (!answer.created) return out(`${name} is unchanged: version ${version} is current`);
      }
      if (opts.json !== true) {
        const traffic = answer.function.currentVersion === version ? '' : ', without traffic';
        out(`deployed ${name} version ${version} (code ${answer.version.codeSha256.slice(0, 12)}${traffic})`);
        for (const line of changeLines(answer.changes)) out(`  ${line}`);
      }
      if (steps === undefined || !answer.created) return;
      const rollout = await client.startRollout(name, {
        version,
        steps,
        ...(rollbackWindow === undefined ? {} : { rollbackWindowSeconds: rollbackWindow }),
      });
      if (opts.json === true) return printJson({ ...answer, rollout });
      out(rolloutLine(rollout));
    });
}
