// `savassan schedule add|ls|rm|pause|resume`: functions invoked asynchronously, with a fixed event, on a cron, rate
// or one-time expression.
import type { Command } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { ScheduleAnswer, ScheduleRequest } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { integer, out, printJson, table } from './output.js';

const client = () => new SavassanClient();

interface AddOptions {
  cron?: string;
  rate?: string;
  at?: string;
  tz?: string;
  event?: string;
  retries?: number;
  maxEventAge?: number;
  missed?: string;
  json?: boolean;
}

/** The `POST /v1/schedules` body `schedule add` sends; the server checks the expressions and bounds. */
export function scheduleRequest(name: string, functionName: string, opts: AddOptions): ScheduleRequest {
  const request: ScheduleRequest = { name, functionName };
  if (opts.cron !== undefined) request.cron = opts.cron;
  if (opts.rate !== undefined) request.rate = opts.rate;
  if (opts.at !== undefined) request.at = opts.at;
  if (opts.tz !== undefined) request.timezone = opts.tz;
  if (opts.event !== undefined) {
    try {
      request.event = JSON.parse(opts.event) as unknown;
    } catch {
      throw new PlatformError('BAD_REQUEST', `--event is not JSON: ${opts.event}`);
    }
  }
  if (opts.retries !== undefined) request.retries = opts.retries;
  if (opts.maxEventAge !== undefined) request.maxEventAgeSeconds = opts.maxEventAge;
  if (opts.missed !== undefined) {
    if (opts.missed !== 'fire' && opts.missed !== 'skip') {
      throw new PlatformError('BAD_REQUEST', `--missed takes fire or skip, got ${opts.missed}`);
    }
    request.missed = opts.missed;
  }
  return request;
}

function scheduleRow(s: ScheduleAnswer): string[] {
  return [s.name, s.functionName, s.expression, s.timezone, s.state, s.nextFireAt ?? '-', s.lastFiredAt ?? '-'];
}

function described(s: ScheduleAnswer): string {
  return `${s.name} (${s.functionName}, ${s.expression}${s.timezone === 'UTC' ? '' : ` ${s.timezone}`})`;
}

export function addScheduleCommands(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('manage schedules: a function invoked asynchronously on a cron, rate or one-time expression');

  schedule
    .command('add')
    .description('create a schedule: give exactly one of --cron, --rate and --at')
    .argument('<name>', 'schedule name: lowercase letters, digits and dashes, starting with a letter')
    .argument('<function>', 'the function to invoke')
    .option('--cron <expression>', '5-field cron ("*/5 * * * *") or EventBridge cron(min hour dom month dow year)')
    .option('--rate <rate>', '"30 seconds" or rate(30 seconds): second(s), minute(s), hour(s), day(s), from 1 second')
    .option('--at <time>', 'once, at a local time: 2027-01-01T09:00 or at(2027-01-01T09:00)')
    .option('--tz <zone>', 'IANA time zone for --cron and --at (default UTC)')
    .option('--event <json>', 'the event each tick submits (default {})')
    .option('--retries <n>', "retries of a function error per event, 0-2 (default: the function's)", integer)
    .option(
      '--max-event-age <seconds>',
      "how long an event may wait to run, 60-21600 (default: the function's)",
      integer,
    )
    .option(
      '--missed <fire|skip>',
      'after a time without a leader: fire the latest missed tick once, or skip (default fire)',
    )
    .option('--json', 'print the schedule as GET /v1/schedules/NAME answers')
    .addHelpText(
      'after',
      '\nEach tick queues one asynchronous invocation of the function (source schedule:NAME).\n' +
        '\nExamples:\n  savassan schedule add nightly report --cron "0 3 * * *" --tz Asia/Seoul\n' +
        '  savassan schedule add heartbeat ping --rate "30 seconds" --event \'{"check":"db"}\'\n' +
        '  savassan schedule add launch announce --at 2027-01-01T09:00 --tz Asia/Seoul',
    )
    .action(async (name: string, functionName: string, opts: AddOptions) => {
      const answer = await client().createSchedule(scheduleRequest(name, functionName, opts));
      if (opts.json === true) return printJson(answer);
      out(`created schedule ${described(answer)}: next fire ${answer.nextFireAt ?? 'none'}`);
    });

  schedule
    .command('ls')
    .description('list schedules and when each fires next')
    .option('--json', 'print {schedules: [...]} as GET /v1/schedules answers')
    .addHelpText('after', '\nExamples:\n  savassan schedule ls')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listSchedules();
      if (opts.json === true) return printJson(answer);
      table([
        ['NAME', 'FUNCTION', 'EXPRESSION', 'TIMEZONE', 'STATE', 'NEXT FIRE', 'LAST FIRED'],
        ...answer.schedules.map(scheduleRow),
      ]);
    });

  schedule
    .command('rm')
    .description('delete a schedule (events it queued already still run)')
    .argument('<name>', 'schedule name')
    .option('--json', 'print {deleted: NAME}')
    .addHelpText('after', '\nExamples:\n  savassan schedule rm nightly')
    .action(async (name: string, opts: { json?: boolean }) => {
      await client().deleteSchedule(name);
      if (opts.json === true) printJson({ deleted: name });
      else out(`deleted schedule ${name}`);
    });

  schedule
    .command('pause')
    .description('pause a schedule: no tick fires until it is resumed')
    .argument('<name>', 'schedule name')
    .option('--json', 'print the schedule as GET /v1/schedules/NAME answers')
    .addHelpText('after', '\nExamples:\n  savassan schedule pause nightly')
    .action(async (name: string, opts: { json?: boolean }) => {
      const answer = await client().pauseSchedule(name);
      if (opts.json === true) printJson(answer);
      else out(`paused schedule ${name}`);
    });

  schedule
    .command('resume')
    .description('resume a paused schedule from its next tick after now (ticks while paused never fire)')
    .argument('<name>', 'schedule name')
    .option('--json', 'print the schedule as GET /v1/schedules/NAME answers')
    .addHelpText('after', '\nExamples:\n  savassan schedule resume nightly')
    .action(async (name: string, opts: { json?: boolean }) => {
      const answer = await client().resumeSchedule(name);
      if (opts.json === true) printJson(answer);
      else out(`resumed schedule ${name}: next fire ${answer.nextFireAt ?? 'none'}`);
    });
}
