// `savassan rollout start|status|promote|abort`: progressive moves of an alias's traffic to a new version, judged step
// by step by the control-plane leader against the version it replaces.
import type { Command } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { RolloutAnswer, RolloutFiguresAnswer, RolloutRequest } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { weightsText } from './alias-commands.js';
import { decimal, integer, integerList, out, printJson, table } from './output.js';

const client = () => new SavassanClient();

/** The flags that set a rollout's settings (`rollout start`, and `deploy --canary` for the rollback window). */
export interface RolloutFlags {
  steps?: number[];
  interval?: number;
  maxErrorRate?: number;
  maxP99Ratio?: number;
  minRequests?: number;
  rollbackWindow?: number;
  alias?: string;
}

/** The settings the flags give; those not given are left to the server's defaults. */
export function rolloutSettings(flags: RolloutFlags): Omit<RolloutRequest, 'version'> {
  const settings: Omit<RolloutRequest, 'version'> = {};
  if (flags.alias !== undefined) settings.alias = flags.alias;
  if (flags.steps !== undefined) settings.steps = flags.steps;
  if (flags.interval !== undefined) settings.intervalSeconds = flags.interval;
  if (flags.maxErrorRate !== undefined) settings.maxErrorRate = flags.maxErrorRate;
  if (flags.maxP99Ratio !== undefined) settings.maxP99Ratio = flags.maxP99Ratio;
  if (flags.minRequests !== undefined) settings.minRequests = flags.minRequests;
  if (flags.rollbackWindow !== undefined) settings.rollbackWindowSeconds = flags.rollbackWindow;
  return settings;
}

/** `120 req, 3 err, p99 45.2 ms`. */
function figuresText(f: RolloutFiguresAnswer): string {
  return `${f.requests} req, ${f.errors} err, p99 ${f.p99Ms === null ? '-' : `${Number(f.p99Ms.toFixed(1))} ms`}`;
}

/** One line of where a rollout stands: `rollout ID of NAME (live): running at 10%, version 3 over 2`. */
export function rolloutLine(r: RolloutAnswer): string {
  return (
    `rollout ${r.id} of ${r.functionName} (${r.alias}): ${r.state.replace('_', ' ')} at ${r.step}%, ` +
    `version ${r.version} over ${r.baseline}; weights ${weightsText(r.weights)}`
  );
}

/** A rollout for a person: where it stands, its settings, and a table of its steps, figures and decisions. */
function printRollout(r: RolloutAnswer): void {
  const { settings } = r;
  out(rolloutLine(r));
  out(`steps ${r.steps.map((s, i) => (i === r.stepIndex ? `[${s}]` : String(s))).join(' ')}`);
  out(
    `every ${settings.intervalSeconds} s once the canary has ${settings.minRequests} requests; fails past ` +
      `+${settings.maxErrorRate} error rate or ${settings.maxP99Ratio}x p99; baseline kept warm ` +
      `${settings.rollbackWindowSeconds} s after promotion`,
  );
  out(`started ${r.createdAt}${r.endedAt === null ? '' : `, ended ${r.endedAt}`}`);
  out('');
  table([
    ['AT', 'STEP', 'DECISION', 'CANARY', 'BASELINE', 'REASON'],
    ...r.history.map((e) => [
      e.at,
      `${e.step}%`,
      e.decision.replace('_', ' '),
      figuresText(e.canary),
      figuresText(e.baseline),
      e.reason,
    ]),
  ]);
}

/** The function's rollout that is running, or a CONFLICT saying there is none. */
async function runningRollout(api: SavassanClient, name: string): Promise<RolloutAnswer> {
  const { rollouts } = await api.listRollouts(name);
  const running = rollouts.find((r) => r.state === 'running');
  if (running !== undefined) return running;
  const last = rollouts[0];
  throw new PlatformError(
    'CONFLICT',
    `no rollout of ${name} is running` +
      (last === undefined ? '' : ` (the last one, of version ${last.version}, was ${last.state.replace('_', ' ')})`),
  );
}

/** Adds the settings flags of a rollout to `command`. */
export function rolloutOptions(command: Command): Command {
  return command
    .option('--steps <percents>', "the canary's share at each step, ending at 100 (default 10,50,100)", integerList)
    .option('--interval <seconds>', 'how long each step lasts before it is judged (default 30)', integer)
    .option(
      '--max-error-rate <rate>',
      "how far the canary's error rate may exceed the baseline's, e.g. 0.01 for one point (default 0.01)",
      decimal,
    )
    .option(
      '--max-p99-ratio <ratio>',
      "the canary's p99 at most this multiple of the baseline's (default 1.5)",
      decimal,
    )
    .option('--min-requests <n>', 'canary requests in a step before it is judged (default 100)', integer);
}

export function addRolloutCommands(program: Command): void {
  const rollout = program
    .command('rollout')
    .description("move an alias's traffic to a new version step by step, rolled back automatically if it fails");

  rolloutOptions(
    rollout
      .command('start')
      .description('start a rollout of a version: the control plane advances it step by step, or rolls it back')
      .argument('<name>', 'function name')
      .argument('<version>', 'the version to roll out (the canary)', integer),
  )
    .option(
      '--rollback-window <seconds>',
      "keep the baseline's warm instances this long after promotion (default 600)",
      integer,
    )
    .option('--alias <alias>', 'the alias whose traffic moves (default live)')
    .option('--json', 'print the rollout as GET /v1/functions/NAME/rollouts/ID answers')
    .addHelpText(
      'after',
      '\nAt each step the canary is compared with the baseline version running at the same time: its error\n' +
        'rate with a statistical test once it has --min-requests, and its p99 latency. A failed step gives the\n' +
        'baseline all of the traffic back at once.\n' +
        '\nExamples:\n  savassan deploy shop ./shop --no-promote\n  savassan rollout start shop 3 --steps 5,25,100 --interval 60\n' +
        '  savassan rollout status shop',
    )
    .action(async (name: string, version: number, opts: RolloutFlags & { json?: boolean }) => {
      const answer = await client().startRollout(name, { version, ...rolloutSettings(opts) });
      if (opts.json === true) return printJson(answer);
      out(rolloutLine(answer));
    });

  rollout
    .command('status')
    .description("show a function's latest rollout: its steps, figures and decisions")
    .argument('<name>', 'function name')
    .option('--json', 'print the rollout as GET /v1/functions/NAME/rollouts/ID answers (null when there is none)')
    .addHelpText(
      'after',
      '\nExamples:\n  savassan rollout status shop\n  savassan rollout status shop --json | jq .state',
    )
    .action(async (name: string, opts: { json?: boolean }) => {
      const { rollouts } = await client().listRollouts(name);
      const latest = rollouts[0];
      if (opts.json === true) return printJson(latest ?? null);
      if (latest === undefined)
        return out(`${name} has no rollouts; start one with: savassan rollout start ${name} VERSION`);
      printRollout(latest);
    });

  for (const [verb, description] of [
    ['promote', "promote the running rollout now: the canary gets all of the alias's traffic"],
    ['abort', "abort the running rollout now, without judging: the baseline gets all of the alias's traffic back"],
  ] as const) {
    rollout
      .command(verb)
      .description(description)
      .argument('<name>', 'function name')
      .option('--json', 'print the rollout as GET /v1/functions/NAME/rollouts/ID answers')
      .addHelpText('after', `\nExamples:\n  savassan rollout ${verb} shop`)
      .action(async (name: string, opts: { json?: boolean }) => {
        const api = client();
        const running = await runningRollout(api, name);
        const answer =
          verb === 'promote' ? await api.promoteRollout(name, running.id) : await api.abortRollout(name, running.id);
        if (opts.json === true) return printJson(answer);
        out(rolloutLine(answer));
      });
  }
}
