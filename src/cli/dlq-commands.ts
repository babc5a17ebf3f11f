// `savassan dlq ls|show|redrive|purge`: a function's dead letters, the asynchronous invocations that failed for good
// with no on-failure destination.
import type { Command } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { AsyncInvocationAnswer } from '../client/client.js';
import { integer, out, printJson, table } from './output.js';

const client = () => new SavassanClient();

/** An asynchronous invocation's attempts, one line each. */
export function attemptLines(invocation: AsyncInvocationAnswer): string[] {
  return invocation.attempts.map(
    (a, i) =>
      `  attempt ${i + 1}  ${a.startedAt}  ${a.status}  ${a.durationMs.toFixed(1)} ms` +
      `${a.invocationId === null ? '' : `  ${a.invocationId}`}${a.error === null ? '' : `  ${a.error}`}`,
  );
}

/** An asynchronous invocation for people: its state, why it failed, each attempt. */
export function printAsyncInvocation(invocation: AsyncInvocationAnswer): void {
  out(`${invocation.invocationId} of ${invocation.functionName}: ${invocation.state}`);
  out(`  enqueued ${invocation.enqueuedAt}`);
  if (invocation.nextAttemptAt !== null) out(`  next attempt ${invocation.nextAttemptAt}`);
  if (invocation.deadLetterReason !== null) out(`  ${invocation.deadLetterReason}`);
  for (const line of attemptLines(invocation)) out(line);
}

export function addDlqCommands(program: Command): void {
  const dlq = program
    .command('dlq')
    .description("a function's dead letters: asynchronous invocations that failed for good")
    .addHelpText(
      'after',
      '\nExamples:\n  savassan dlq ls billing\n  savassan dlq show billing 0193…\n  savassan dlq redrive billing --all',
    );

  dlq
    .command('ls')
    .description('list dead letters, most recent first')
    .argument('<name>', 'function name')
    .option('-n, --limit <n>', 'how many (default and at most 100)', integer)
    .option('--json', 'print {deadLetters} as GET /v1/functions/NAME/dead-letters answers')
    .action(async (name: string, opts: { limit?: number; json?: boolean }) => {
      const answer = await client().listDeadLetters(name, opts.limit);
      if (opts.json === true) return printJson(answer);
      if (answer.deadLetters.length === 0) return out(`${name} has no dead letters`);
      table([
        ['ID', 'DEAD-LETTERED', 'ATTEMPTS', 'REASON'],
        ...answer.deadLetters.map((d) => [
          d.invocationId,
          d.deadLetteredAt ?? '',
          String(d.attempts.length),
          d.deadLetterReason ?? '',
        ]),
      ]);
    });

  dlq
    .command('show')
    .description('show a dead letter: its event, why it failed, every attempt')
    .argument('<name>', 'function name')
    .argument('<id>', 'the invocation id')
    .option('--json', 'print it as the API answers')
    .action(async (name: string, id: string, opts: { json?: boolean }) => {
      const letter = await client().getDeadLetter(name, id);
      if (opts.json === true) return printJson(letter);
      printAsyncInvocation(letter);
      out(`  event ${JSON.stringify(letter.event)}`);
    });

  dlq
    .command('redrive')
    .description('queue dead letters again (retries and event age start again)')
    .argument('<name>', 'function name')
    .argument('[ids...]', 'the invocation ids')
    .option('--all', 'every dead letter of the function (those there when it starts, up to 1000)')
    .action(async (name: string, ids: string[], opts: { all?: boolean }) => {
      const api = client();
      if (opts.all !== true) {
        if (ids.length === 0) return out('name the ids to redrive, or --all');
        for (const id of ids) {
          await api.redriveDeadLetter(name, id);
          out(`redriven ${id}`);
        }
        return;
      }
      // A page at a time (redriven ones leave the list); one that fails again at once is not taken twice.
      const done = new Set<string>();
      for (let page = 0; page < 10; page++) {
        const fresh = (await api.listDeadLetters(name, 100)).deadLetters.filter((d) => !done.has(d.invocationId));
        if (fresh.length === 0) break;
        for (const { invocationId } of fresh) {
          await api.redriveDeadLetter(name, invocationId);
          done.add(invocationId);
          out(`redriven ${invocationId}`);
        }
      }
      if (done.size === 0) out(`${name} has no dead letters`);
    });

  dlq
    .command('purge')
    .description("delete a function's dead letters")
    .argument('<name>', 'function name')
    .action(async (name: string) => {
      const { purged } = await client().purgeDeadLetters(name);
      out(`purged ${purged} dead letter${purged === 1 ? '' : 's'} of ${name}`);
    });
}
