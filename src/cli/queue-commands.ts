// `savassan queue …` and `savassan trigger …`: named message queues, and triggers that run a function with batches
// of a queue's messages.
import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { QueueAnswer, TriggerAnswer } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { integer, out, printJson, repeated, table } from './output.js';

const client = () => new SavassanClient();

/** `1s`, `30s`, `2m` or a plain number of seconds: a whole number of seconds. */
export function windowArg(value: string): number {
  const match = /^([0-9]+)(s|m)?$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError(`expected seconds like 1s, 30s or 2m, got ${value}`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

function queueRow(queue: QueueAnswer): string[] {
  return [
    queue.name,
    String(queue.depth),
    String(queue.inFlight),
    queue.oldestAgeSeconds === null ? '-' : `${queue.oldestAgeSeconds}s`,
  ];
}

function triggerRow(trigger: TriggerAnswer): string[] {
  return [
    trigger.id,
    trigger.functionName,
    trigger.queue,
    String(trigger.batchSize),
    `${trigger.windowSeconds}s`,
    String(trigger.maxConcurrency),
    String(trigger.maxReceives),
    trigger.deadLetterQueue ?? '-',
  ];
}

export function addQueueCommands(program: Command): void {
  const queue = program
    .command('queue')
    .description('manage message queues: send messages that a trigger runs a function with (savassan trigger)');

  queue
    .command('create')
    .description('create a queue (nothing happens if it exists)')
    .argument('<queue>', 'queue name: 1 to 80 letters, digits, dashes and underscores')
    .option('--json', 'print {created, queue}')
    .addHelpText('after', '\nExamples:\n  savassan queue create orders')
    .action(async (name: string, opts: { json?: boolean }) => {
      const answer = await client().createQueue(name);
      if (opts.json === true) return printJson(answer);
      out(answer.created ? `created queue ${name}` : `queue ${name} exists already`);
    });

  queue
    .command('send')
    .description('send messages to a queue: each BODY is one message (up to 100, all or none)')
    .argument('<queue>', 'queue name')
    .argument('[bodies...]', 'message bodies (text, up to 256 KiB each)')
    .option('--file <path>', 'a message whose body is the content of the file (repeatable)', repeated)
    .option('--json', 'print {messageIds: [...]}')
    .addHelpText(
      'after',
      '\nExamples:\n  savassan queue send orders \'{"order":42}\'\n  savassan queue send orders first second third\n' +
        '  savassan queue send orders --file order.json',
    )
    .action(async (name: string, bodies: string[], opts: { file?: string[]; json?: boolean }) => {
      const files = await Promise.all((opts.file ?? []).map((path) => readFile(path, 'utf8')));
      const all = [...bodies, ...files];
      if (all.length === 0) {
        throw new PlatformError('BAD_REQUEST', 'give at least one message: a BODY argument or --file PATH');
      }
      const answer = await client().sendMessages(name, all);
      if (opts.json === true) return printJson(answer);
      for (const id of answer.messageIds) out(id);
    });

  queue
    .command('ls')
    .description('list queues: messages waiting, in flight, and the age of the oldest')
    .option('--json', 'print {queues: [...]} as GET /v1/queues answers')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listQueues();
      if (opts.json === true) return printJson(answer);
      table([['QUEUE', 'DEPTH', 'IN FLIGHT', 'OLDEST'], ...answer.queues.map(queueRow)]);
    });

  queue
    .command('purge')
    .description('delete every message of a queue, waiting or in flight')
    .argument('<queue>', 'queue name')
    .option('--json', 'print {purged: N}')
    .action(async (name: string, opts: { json?: boolean }) => {
      const answer = await client().purgeQueue(name);
      if (opts.json === true) return printJson(answer);
      out(`purged ${answer.purged} message${answer.purged === 1 ? '' : 's'} from ${name}`);
    });

  queue
    .command('rm')
    .description('delete a queue and its messages (not while a trigger uses it)')
    .argument('<queue>', 'queue name')
    .option('--json', 'print {deleted: QUEUE}')
    .action(async (name: string, opts: { json?: boolean }) => {
      await client().deleteQueue(name);
      if (opts.json === true) printJson({ deleted: name });
      else out(`deleted queue ${name}`);
    });

  const trigger = program
    .command('trigger')
    .description("manage queue triggers: run a function with batches of a queue's messages (an SQS-shaped event)");

  trigger
    .command('add')
    .description('run FUNCTION with batches of the messages of a queue')
    .argument('<function>', 'function name')
    .requiredOption('--queue <queue>', 'the queue to read')
    .option('--batch-size <n>', 'messages per invocation at most (1 to 100, default 10)', integer)
    .option(
      '--window <seconds>',
      'how long a batch gathers messages before it runs short (0s to 300s, default 1s)',
      windowArg,
    )
    .option('--max-concurrency <n>', 'batches running at once, per gateway (1 to 100, default 4)', integer)
    .option(
      '--max-receives <n>',
      'receives before a message is dead-lettered or dropped (1 to 100, default 5)',
      integer,
    )
    .option('--dead-letter-queue <queue>', 'where messages received too often go (default: dropped, logged)')
    .option('--json', 'print the trigger as POST /v1/triggers answers')
    .addHelpText(
      'after',
      '\nThe handler gets {"Records": [...]} as from SQS; it may answer {"batchItemFailures": [{"itemIdentifier": ID}]}\n' +
        'to have only those messages received again.\n' +
        '\nExamples:\n  savassan trigger add billing --queue orders\n' +
        '  savassan trigger add billing --queue orders --batch-size 50 --window 5s --dead-letter-queue orders-dlq',
    )
    .action(
      async (
        functionName: string,
        opts: {
          queue: string;
          batchSize?: number;
          window?: number;
          maxConcurrency?: number;
          maxReceives?: number;
          deadLetterQueue?: string;
          json?: boolean;
        },
      ) => {
        const answer = await client().createTrigger({
          functionName,
          queue: opts.queue,
          ...(opts.batchSize === undefined ? {} : { batchSize: opts.batchSize }),
          ...(opts.window === undefined ? {} : { windowSeconds: opts.window }),
          ...(opts.maxConcurrency === undefined ? {} : { maxConcurrency: opts.maxConcurrency }),
          ...(opts.maxReceives === undefined ? {} : { maxReceives: opts.maxReceives }),
          ...(opts.deadLetterQueue === undefined ? {} : { deadLetterQueue: opts.deadLetterQueue }),
        });
        if (opts.json === true) return printJson(answer);
        out(`added trigger ${answer.id}: ${functionName} runs with batches of queue ${opts.queue}`);
      },
    );

  trigger
    .command('ls')
    .description('list queue triggers')
    .option('--json', 'print {triggers: [...]} as GET /v1/triggers answers')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listTriggers();
      if (opts.json === true) return printJson(answer);
      table([
        ['ID', 'FUNCTION', 'QUEUE', 'BATCH', 'WINDOW', 'CONCURRENCY', 'MAX RECEIVES', 'DEAD-LETTER QUEUE'],
        ...answer.triggers.map(triggerRow),
      ]);
    });

  trigger
    .command('rm')
    .description('remove a trigger (its batches in flight finish)')
    .argument('<id>', 'trigger id, as trigger ls shows')
    .option('--json', 'print {deleted: ID}')
    .action(async (id: string, opts: { json?: boolean }) => {
      await client().deleteTrigger(id);
      if (opts.json === true) printJson({ deleted: id });
      else out(`removed trigger ${id}`);
    });
}
