// `savassan workflow deploy|ls|rm|run|status|logs|terminate|recover|relaunch`: workflows (DAGs of functions) and
// their executions, through `/v1/workflows` and the Flyte-shaped `/api/v1/executions`.
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { Command } from 'commander';
import { SavassanClient, defaultDomain, defaultProject } from '../client/client.js';
import type { ExecutionKey, ExecutionView, NodeExecutionView } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { terminalExecutionPhases } from '../core/ports/workflow-store.js';
import { info, integer, out, printJson, repeated, table } from './output.js';

const client = () => new SavassanClient();

/**
 * An execution named on the command line: `NAME` (in project `savassan`, domain `development`, unless `--project`
 * and `--domain` say otherwise) or `PROJECT/DOMAIN/NAME`.
 *
 * @example
 * executionKey('abc'); // { project: 'savassan', domain: 'development', name: 'abc' }
 * executionKey('p/d/abc'); // { project: 'p', domain: 'd', name: 'abc' }
 */
export function executionKey(text: string, defaults: { project?: string; domain?: string } = {}): ExecutionKey {
  const parts = text.split('/');
  if (parts.length === 3 && parts.every((part) => part !== '')) {
    const [project, domain, name] = parts as [string, string, string];
    return { project, domain, name };
  }
  if (parts.length === 1 && text !== '') {
    return { project: defaults.project ?? defaultProject, domain: defaults.domain ?? defaultDomain, name: text };
  }
  throw new PlatformError('BAD_REQUEST', `an execution is NAME or PROJECT/DOMAIN/NAME, got ${text}`);
}

const keyText = (key: ExecutionKey): string => `${key.project}/${key.domain}/${key.name}`;

/**
 * The inputs of `workflow run`: `--inputs JSON` (an object, or a Flyte literal map), then each `--input k=v` over
 * it. A value that reads as JSON is that JSON (`n=3` is the number 3, `flag=true` a boolean, `xs=[1,2]` a list);
 * anything else is a string (`name=Ada`; `s="3"` for the string "3").
 */
export function runInputs(inputs: string | undefined, pairs: readonly string[]): Record<string, unknown> {
  let values: Record<string, unknown> = {};
  if (inputs !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(inputs);
    } catch {
      throw new PlatformError('BAD_REQUEST', `--inputs is not JSON: ${inputs}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new PlatformError('BAD_REQUEST', '--inputs must be a JSON object of inputs by name');
    }
    values = parsed as Record<string, unknown>;
  }
  if (pairs.length > 0 && 'literals' in values && Object.keys(values).length === 1) {
    throw new PlatformError('BAD_REQUEST', '--input cannot be added to a Flyte literal map given with --inputs');
  }
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new PlatformError('BAD_REQUEST', `--input takes NAME=VALUE, got ${pair}`);
    const text = pair.slice(at + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // a plain string
    }
    values[pair.slice(0, at)] = value;
  }
  return values;
}

/** Seconds of a protobuf JSON duration (`"1.250s"`), for display. */
function seconds(duration: string): string {
  const n = Number(duration.replace(/s$/, ''));
  return Number.isFinite(n) ? `${n.toFixed(n < 10 ? 3 : 1)}s` : duration;
}

function nodeRow(node: NodeExecutionView): string[] {
  const { closure } = node;
  return [
    node.id.node_id,
    closure.phase,
    String(node.attempts.length),
    seconds(closure.duration),
    node.function === undefined
      ? '-'
      : `${node.function.name}${node.function.version === null ? '' : `:${node.function.version}`}`,
    node.cache_hit
      ? 'cached'
      : closure.workflow_node_metadata !== undefined
        ? keyText(closure.workflow_node_metadata.execution_id)
        : '',
    closure.error === undefined ? '' : `[${closure.error.code}] ${closure.error.message}`.slice(0, 120),
  ];
}

function printStatus(execution: ExecutionView, nodes: NodeExecutionView[]): void {
  const { closure } = execution;
  const lp = execution.spec.launch_plan;
  out(`execution ${keyText(execution.id)}`);
  out(`workflow  ${lp.name} version ${lp.version}`);
  out(`phase     ${closure.phase}`);
  out(`duration  ${seconds(closure.duration)}`);
  if (closure.error !== undefined) out(`error     [${closure.error.code}] ${closure.error.message}`);
  if (closure.abort_metadata !== undefined) out(`aborted   ${closure.abort_metadata.cause}`);
  if (nodes.length === 0) return;
  out('');
  table([['NODE', 'PHASE', 'ATTEMPTS', 'DURATION', 'FUNCTION', 'NOTE', 'ERROR'], ...nodes.map(nodeRow)]);
}

/** Waits for an execution to end: its last view. */
async function waitForEnd(c: SavassanClient, id: ExecutionKey): Promise<ExecutionView> {
  let delay = 100;
  for (;;) {
    const execution = await c.getExecution(id);
    if (terminalExecutionPhases.has(execution.closure.phase)) return execution;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

interface RunOptions {
  input?: string[];
  inputs?: string;
  project?: string;
  domain?: string;
  execName?: string;
  version?: number;
  wait?: boolean;
  json?: boolean;
}

const keyOptions = (command: Command): Command =>
  command
    .option('--project <project>', `the project of a bare execution NAME (default ${defaultProject})`)
    .option('--domain <domain>', `the domain of a bare execution NAME (default ${defaultDomain})`);

export function addWorkflowCommands(program: Command): void {
  const workflow = program
    .command('workflow')
    .description('manage workflows (DAGs of functions) and run them: executions as Flyte names them');

  workflow
    .command('deploy')
    .description('deploy a workflow spec (JSON) as a new version; the same spec again keeps the latest version')
    .argument('<file>', 'the spec, a JSON file')
    .option('--name <name>', 'the workflow name (default: the file name without .json)')
    .option('--json', 'print the answer of PUT /v1/workflows/NAME')
    .addHelpText(
      'after',
      '\nThe spec: {"inputs": {"x": "number"}, "nodes": {"a": {"function": "double", "input": {"n": "$.inputs.x"}}},\n' +
        ' "output": "$.nodes.a.output"}. A fault is a 400 naming the node and the JSON path.\n' +
        '\nExamples:\n  savassan workflow deploy pipeline.json\n  savassan workflow deploy wf.json --name pipeline',
    )
    .action(async (file: string, opts: { name?: string; json?: boolean }) => {
      const text = await readFile(file, 'utf8');
      let spec: Record<string, unknown>;
      try {
        spec = JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw new PlatformError('BAD_REQUEST', `${file} is not JSON: ${(err as Error).message}`);
      }
      const name = opts.name ?? basename(file, extname(file));
      const answer = await client().deployWorkflow(name, spec);
      if (opts.json === true) return printJson(answer);
      out(
        answer.created
          ? `deployed workflow ${answer.name} version ${answer.version}`
          : `workflow ${answer.name} is unchanged: version ${answer.version}`,
      );
    });

  workflow
    .command('ls')
    .description('list workflows and their latest versions')
    .option('--json', 'print {workflows: [...]} as GET /v1/workflows answers')
    .addHelpText('after', '\nExamples:\n  savassan workflow ls')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listWorkflows();
      if (opts.json === true) return printJson(answer);
      table([
        ['NAME', 'VERSION', 'NODES', 'UPDATED', 'DESCRIPTION'],
        ...answer.workflows.map((w) => [
          w.name,
          String(w.latestVersion),
          String(w.nodeCount),
          w.updatedAt,
          w.description ?? '',
        ]),
      ]);
    });

  workflow
    .command('rm')
    .description('delete a workflow and all its versions (its executions stay)')
    .argument('<name>', 'workflow name')
    .option('--json', 'print {deleted: NAME}')
    .addHelpText('after', '\nExamples:\n  savassan workflow rm pipeline')
    .action(async (name: string, opts: { json?: boolean }) => {
      await client().deleteWorkflow(name);
      if (opts.json === true) printJson({ deleted: name });
      else out(`deleted workflow ${name}`);
    });

  workflow
    .command('run')
    .description('launch an execution of a workflow; prints its id PROJECT/DOMAIN/NAME')
    .argument('<workflow>', 'workflow name')
    .option('--input <name=value>', 'an input (repeatable); a value that is JSON is that JSON, else a string', repeated)
    .option('--inputs <json>', 'the inputs as a JSON object (or a Flyte literal map {"literals": {...}})')
    .option('--project <project>', `project (default ${defaultProject})`)
    .option('--domain <domain>', `domain (default ${defaultDomain})`)
    .option('--exec-name <name>', 'the execution name (default: a generated one)')
    .option('--version <n>', 'the workflow version (default: the latest)', integer)
    .option('--wait', 'wait for the execution to end, print its status and outputs; exit 1 unless it SUCCEEDED')
    .option('--json', 'print {id} (with --wait: {execution, outputs})')
    .addHelpText(
      'after',
      '\nExamples:\n  savassan workflow run pipeline --input x=3 --wait\n' +
        '  savassan workflow run pipeline --inputs \'{"x": 3, "tags": ["a"]}\' --exec-name nightly-1',
    )
    .action(async (name: string, opts: RunOptions) => {
      const c = client();
      const { id } = await c.launchExecution({
        workflow: name,
        inputs: runInputs(opts.inputs, opts.input ?? []),
        ...(opts.project === undefined ? {} : { project: opts.project }),
        ...(opts.domain === undefined ? {} : { domain: opts.domain }),
        ...(opts.execName === undefined ? {} : { name: opts.execName }),
        ...(opts.version === undefined ? {} : { version: opts.version }),
      });
      if (opts.wait !== true) {
        if (opts.json === true) printJson({ id });
        else out(keyText(id));
        return;
      }
      if (opts.json !== true) info(`launched ${keyText(id)}; waiting for it to end`);
      const execution = await waitForEnd(c, id);
      const { outputs } = await c.executionData(id);
      if (opts.json === true) {
        printJson({ execution, outputs });
      } else {
        printStatus(execution, await c.nodeExecutions(id));
        if (execution.closure.phase === 'SUCCEEDED') out(`\noutputs   ${JSON.stringify(outputs)}`);
      }
      if (execution.closure.phase !== 'SUCCEEDED') process.exitCode = 1;
    });

  keyOptions(
    workflow
      .command('status')
      .description("an execution's phase and duration, and a table of its nodes")
      .argument('<execution>', 'NAME or PROJECT/DOMAIN/NAME'),
  )
    .option('--json', 'print {execution, nodes} as GET /api/v1/executions/... and /api/v1/node_executions/... answer')
    .addHelpText(
      'after',
      '\nExamples:\n  savassan workflow status f3k2j1x0a9b8c7d6e5f4\n  savassan workflow status savassan/development/nightly-1',
    )
    .action(async (text: string, opts: { project?: string; domain?: string; json?: boolean }) => {
      const c = client();
      const id = executionKey(text, opts);
      const [execution, nodes] = await Promise.all([c.getExecution(id), c.nodeExecutions(id)]);
      if (opts.json === true) return printJson({ execution, nodes });
      printStatus(execution, nodes);
    });

  keyOptions(
    workflow
      .command('logs')
      .description("the logs of an execution's node invocations, each attempt in turn")
      .argument('<execution>', 'NAME or PROJECT/DOMAIN/NAME'),
  )
    .option('--node <id>', 'only this node (a map node: all its elements)')
    .addHelpText(
      'after',
      '\nExamples:\n  savassan workflow logs nightly-1\n  savassan workflow logs nightly-1 --node fetch',
    )
    .action(async (text: string, opts: { project?: string; domain?: string; node?: string }) => {
      const c = client();
      const id = executionKey(text, opts);
      const nodes = (await c.nodeExecutions(id)).filter(
        (node) => opts.node === undefined || node.metadata.spec_node_id === opts.node || node.id.node_id === opts.node,
      );
      if (opts.node !== undefined && nodes.length === 0) {
        throw new PlatformError('NOT_FOUND', `execution ${keyText(id)} has no node ${opts.node}`);
      }
      for (const node of nodes) {
        for (const attempt of node.attempts) {
          if (attempt.invocation_id === null) continue;
          out(
            `== ${node.id.node_id} attempt ${attempt.attempt} ${attempt.phase} (invocation ${attempt.invocation_id})`,
          );
          const log = await c.invocationLog(attempt.invocation_id);
          if (log !== '') process.stdout.write(log.endsWith('\n') ? log : `${log}\n`);
        }
      }
    });

  keyOptions(
    workflow
      .command('terminate')
      .description('abort a running execution: its running nodes are aborted, it ends ABORTED')
      .argument('<execution>', 'NAME or PROJECT/DOMAIN/NAME'),
  )
    .option('--cause <text>', 'why (kept as the abort cause)')
    .option('--json', 'print {terminated: ID}')
    .addHelpText('after', '\nExamples:\n  savassan workflow terminate nightly-1 --cause "wrong input"')
    .action(async (text: string, opts: { project?: string; domain?: string; cause?: string; json?: boolean }) => {
      const id = executionKey(text, opts);
      await client().terminateExecution(id, opts.cause);
      if (opts.json === true) printJson({ terminated: id });
      else out(`terminated ${keyText(id)}`);
    });

  for (const [verb, description] of [
    ['recover', 'a new execution that keeps the outputs of the nodes that succeeded and runs the rest'],
    ['relaunch', 'a new execution of the same workflow version with the same inputs'],
  ] as const) {
    keyOptions(
      workflow
        .command(verb)
        .description(`${description}; prints its id`)
        .argument('<execution>', 'NAME or PROJECT/DOMAIN/NAME'),
    )
      .option('--exec-name <name>', 'the new execution name (default: a generated one)')
      .option('--json', 'print {id}')
      .addHelpText('after', `\nExamples:\n  savassan workflow ${verb} nightly-1`)
      .action(async (text: string, opts: { project?: string; domain?: string; execName?: string; json?: boolean }) => {
        const c = client();
        const from = executionKey(text, opts);
        const { id } =
          verb === 'recover'
            ? await c.recoverExecution(from, opts.execName)
            : await c.relaunchExecution(from, opts.execName);
        if (opts.json === true) printJson({ id });
        else out(keyText(id));
      });
  }
}
