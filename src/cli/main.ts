// The `savassan` command. Each command module loads what it needs when it runs: a client command loads the HTTP
// client only, `start` and the cluster roles load the platform.
import { Command } from 'commander';
import { ApiError } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { addAliasCommands } from './alias-commands.js';
import { addClientCommands } from './client-commands.js';
import { addDlqCommands } from './dlq-commands.js';
import { addClusterCommands } from './cluster-commands.js';
import { addDeployCommand } from './deploy-command.js';
import { addIntelligenceCommands } from './intelligence-commands.js';
import { addLeaderCommands } from './leader-commands.js';
import { describeBuild } from '../core/build-info.js';
import { info, out, printJson } from './output.js';
import { addPlanCommands } from './plan-commands.js';
import { addQueueCommands } from './queue-commands.js';
import { addRolloutCommands } from './rollout-commands.js';
import { addScheduleCommands } from './schedule-commands.js';
import { addSecretCommands } from './secret-commands.js';
import { addStartCommand } from './start-command.js';
import { addUrlCommands } from './url-commands.js';
import { addWorkflowCommands } from './workflow-commands.js';

export function buildProgram(): Command {
  const program = new Command('savassan')
    .description(
      'Savassan: a self-hosted serverless platform. Server URL from SAVASSAN_URL (default http://127.0.0.1:8080), API key from SAVASSAN_API_KEY.',
    )
    .configureOutput({
      // A flag error is one line in the format of every other error, not the error and the whole help.
      outputError: (text, write) => write(`[BAD_REQUEST] ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`),
    });
  addStartCommand(program);
  addClusterCommands(program);
  addDeployCommand(program);
  addClientCommands(program);
  addSecretCommands(program);
  addAliasCommands(program);
  addDlqCommands(program);
  addRolloutCommands(program);
  addScheduleCommands(program);
  addQueueCommands(program);
  addUrlCommands(program);
  addWorkflowCommands(program);
  addPlanCommands(program);
  addIntelligenceCommands(program);
  addLeaderCommands(program);
  addVersionCommand(program);
  return program;
}

/** `savassan version [--json]`: the installation's version, build id and control protocol. */
function addVersionCommand(program: Command): void {
  program
    .command('version')
    .description('print the version, build id and control protocol of this installation')
    .addHelpText('after', '\nExamples:\n  savassan version\n  savassan version --json')
    .option('--json', 'print {"version","build","protocol"} as one JSON line')
    .action(async (opts: { json?: boolean }) => {
      const { readBuildInfo } = await import('../cluster/build.js');
      const build = await readBuildInfo();
      out(opts.json === true ? JSON.stringify(build) : `savassan ${describeBuild(build)}`);
    });
}

/** Node's errors of the user's own files (`-f missing.json`) are theirs, not the platform's. */
const userErrnos = new Set(['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR', 'EPERM']);

/** Any error as `{code, message}` and the lines a person reads after `[CODE] message`. */
export function describeError(err: unknown): { code: string; message: string; details: Record<string, unknown> } {
  if (err instanceof ApiError) {
    const { code: _code, message: _message, ...details } = err.body;
    const retry = err.headers.get('retry-after');
    return {
      code: err.code,
      message: err.rawMessage,
      details: { ...details, ...(retry === null ? {} : { retryAfterSeconds: Number(retry) }) },
    };
  }
  if (err instanceof PlatformError) return { code: err.code, message: err.rawMessage, details: err.details };
  const errno = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof errno === 'string' && userErrnos.has(errno)) return { code: 'BAD_REQUEST', message, details: {} };
  return { code: 'INTERNAL', message, details: {} };
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const { code, message, details } = describeError(err);
    if (argv.includes('--json')) {
      printJson({ error: { code, message, ...details } });
    } else {
      info(`[${code}] ${message}`);
      if (typeof details.invocationId === 'string') info(`invocation ${details.invocationId}`);
      if (typeof details.stack === 'string') info(details.stack);
      if (typeof details.retryAfterSeconds === 'number') info(`retry after ${details.retryAfterSeconds} s`);
    }
    process.exitCode = 1;
  }
}
