// `--workflow-backend builtin|flyte` and the Flyte options, for `savassan start` and `savassan gateway`. FlyteAdmin's
// token comes only from SAVASSAN_FLYTE_TOKEN: it is read once and dropped from this process's environment, so that
// nothing the process starts inherits it.
import { Option, type Command } from 'commander';
import type { WorkflowBackendKind, WorkflowBackendOptions } from '../embedded/workflow-backend.js';

export interface WorkflowBackendFlags {
  workflowBackend: WorkflowBackendKind;
  flyteUrl: string | undefined;
  flyteProject: string | undefined;
  flyteDomains: string[] | undefined;
}

const flyteTokenEnv = 'SAVASSAN_FLYTE_TOKEN';

function domains(value: string): string[] {
  return value
    .split(',')
    .map((domain) => domain.trim())
    .filter((domain) => domain !== '');
}

export function withWorkflowBackend(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--workflow-backend <kind>',
        'where workflow executions run: builtin (the engine in Savassan) or flyte (a FlyteAdmin, see --flyte-url)',
      )
        .choices(['builtin', 'flyte'])
        .default('builtin'),
    )
    .option(
      '--flyte-url <url>',
      `FlyteAdmin's HTTP address (required with --workflow-backend flyte); its token: ${flyteTokenEnv}`,
    )
    .option('--flyte-project <project>', 'the Flyte project workflows are registered in (default savassan)')
    .option(
      '--flyte-domains <domains>',
      'the Flyte domains workflows are registered in, comma-separated (default development)',
      domains,
    );
}

/** The embedded or gateway option, with the token taken out of the environment. */
export function workflowBackendFrom(opts: WorkflowBackendFlags): WorkflowBackendOptions {
  const token = process.env[flyteTokenEnv];
  delete process.env[flyteTokenEnv];
  return {
    kind: opts.workflowBackend,
    flyteUrl: opts.flyteUrl,
    flyteProject: opts.flyteProject,
    flyteDomains: opts.flyteDomains,
    flyteToken: token,
  };
}
