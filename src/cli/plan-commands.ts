// `savassan plan "PROMPT"` and `savassan plan get ID`: Khaydarin's prompt-to-plan chain, through `/v1/plans`.
import type { Command } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { PlanAnswer } from '../client/client.js';
import { info, out, printJson } from './output.js';

const client = () => new SavassanClient();

/** A plan request for a reader: the outcome line, the plan as JSON, then warnings or problems (on stderr). */
function printPlan(answer: PlanAnswer, replayed: boolean): void {
  out(
    `plan ${answer.id} ${answer.status} (${answer.planner}, ${answer.attempts} model call(s), ${answer.processingMs} ms)` +
      (replayed ? ` [replayed: requestId ${answer.requestId} was known]` : ''),
  );
  if (answer.plan !== null) out(JSON.stringify(answer.plan, null, 2));
  for (const warning of answer.warnings) info(`warning: ${warning}`);
  for (const problem of answer.problems) info(`problem: ${problem.path}: ${problem.message}`);
}

/** Non-zero exit unless the plan came out: a script can tell a failed plan from one it can use. */
function setExit(answer: PlanAnswer): void {
  if (answer.status !== 'SUCCESS') process.exitCode = 1;
}

export function addPlanCommands(program: Command): void {
  const plan = program
    .command('plan')
    .description('turn a prompt into a fine-tuning plan (Khaydarin); `plan get ID` shows a stored one')
    .argument('<prompt>', 'what to fine-tune, in words')
    .option('--user <id>', 'who asks (default anonymous)')
    .option('--request-id <id>', 'idempotency key: the same one again answers the stored plan and runs nothing')
    .option('--json', 'print the plan request as POST /v1/plans answers it')
    .addHelpText(
      'after',
      '\nThe exit status is 0 when the status is SUCCESS, 1 for LLM_ERROR or PARSING_ERROR. Warnings name what the\n' +
        'planner did not find in the prompt and defaulted.\n' +
        '\nExamples:\n' +
        '  savassan plan "LoRA of my dog Fluffy in watercolor style, 25 photos"\n' +
        '  savassan plan "dreambooth of my cat" --user ada --request-id cat-1 --json\n' +
        '  savassan plan get plan-abcdefghijklmnopqrstuvwxyz',
    )
    .action(async (prompt: string, opts: { user?: string; requestId?: string; json?: boolean }) => {
      const { created, plan: answer } = await client().createPlan({
        prompt,
        ...(opts.user === undefined ? {} : { userId: opts.user }),
        ...(opts.requestId === undefined ? {} : { requestId: opts.requestId }),
      });
      if (opts.json === true) printJson(answer);
      else printPlan(answer, !created);
      setExit(answer);
    });

  plan
    .command('get')
    .description('show a plan request and how it ended')
    .argument('<id>', 'the plan id (plan-…)')
    .option('--json', 'print the plan request as GET /v1/plans/ID answers it')
    .addHelpText('after', '\nExamples:\n  savassan plan get plan-abcdefghijklmnopqrstuvwxyz')
    .action(async (id: string, opts: { json?: boolean }) => {
      const answer = await client().getPlan(id);
      // `plan` itself takes --json too, and commander gives a flag both know to the parent.
      if (opts.json === true || plan.opts<{ json?: boolean }>().json === true) printJson(answer);
      else printPlan(answer, false);
      setExit(answer);
    });
}
