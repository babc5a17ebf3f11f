// Events: what asynchronous invocations, schedules and queue triggers give a user, on one server (bwrap where it runs):
// - the rate of 202s at concurrency 32 for the no-op, beside the rate of 200s of a plain invoke of the same function,
//   in interleaved rounds (the queue drained between rounds, so that neither side shares the machine with the other);
// - events/s end to end: N events submitted as fast as they are accepted, from the first 202 until the last one has
//   run, at the default `asyncConcurrency` and at 64;
// - a `rate(1 second)` schedule's firing delay: each run's attempt start against its tick's time;
// - a queue trigger's throughput: a queue filled beforehand, drained in batches of 10 at `maxConcurrency` 4 (the
//   default) and at 16, messages/s and batches/s from the trigger's creation until the queue holds none.
// Run alone: `npm run build && node --import tsx bench/events.ts` (BENCH_QUICK=1 for a short run); it writes
// bench/results/<date>-events.json.
import { Agent } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient, type AsyncInvocationAnswer } from '../src/client/client.js';
import { functionLimits } from '../src/core/function-config.js';
import { triggerSettingLimits } from '../src/core/message-queue-rules.js';
import { repoRoot, startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { bwrapSkipReason, startBwrapServer } from './bwrap-server.js';
import { runSectionAlone, runsAlone } from './section-alone.js';
import { load, post, round, summarise, warmUntilSteady } from './load.js';

export interface EventsOptions {
  /** Requests per side over all rounds of the accept-rate comparison. */
  acceptRequests: number;
  /** Events per end-to-end run. */
  events: number;
  /** End-to-end runs per `asyncConcurrency` setting, alternating between the settings. */
  endToEndRuns: number;
  /** How long the schedule fires (ms). */
  scheduleMs: number;
  /** Messages in the queue when each trigger run starts. */
  queueMessages: number;
  /** Trigger runs per `maxConcurrency` setting, alternating between the settings. */
  triggerRuns: number;
}

const acceptRounds = 4;
const defaultAsyncConcurrency = functionLimits.asyncConcurrency.default;
const highAsyncConcurrency = 64;
const triggerBatchSize = 10;
const defaultTriggerConcurrency = triggerSettingLimits.maxConcurrency.default;
const highTriggerConcurrency = 16;
/** Concurrency of the bench's own reads of invocation states (not part of any figure). */
const readConcurrency = 8;

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * The ticks of a rate schedule created at `createdAt` that fired up to `lastFiredAt`: one every `periodMs`, counted
 * from the creation (the first one period after it).
 */
export function rateTicks(createdAt: string, lastFiredAt: string | null, periodMs: number): Date[] {
  if (lastFiredAt === null) return [];
  const created = Date.parse(createdAt);
  const last = Date.parse(lastFiredAt);
  const ticks: Date[] = [];
  for (let at = created + periodMs; at <= last; at += periodMs) ticks.push(new Date(at));
  return ticks;
}

/** The idempotency key the control-plane leader queues a schedule's tick with. */
export function tickKey(schedule: string, tick: Date): string {
  return `schedule:${schedule}:${tick.toISOString()}`;
}

/** The time of a tick from the key it was queued with; null for a key that is not one of `schedule`'s ticks. */
export function tickOfKey(schedule: string, key: string | null): Date | null {
  const prefix = `schedule:${schedule}:`;
  if (key === null || !key.startsWith(prefix)) return null;
  const at = Date.parse(key.slice(prefix.length));
  return Number.isNaN(at) ? null : new Date(at);
}

/** Runs `work` over `items`, `concurrency` at a time, keeping the order of the answers. */
async function mapConcurrently<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const answers: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        answers[i] = await work(items[i]!);
      }
    }),
  );
  return answers;
}

const settledStates: ReadonlySet<AsyncInvocationAnswer['state']> = new Set(['succeeded', 'failed', 'dead_lettered']);

/** Reads an asynchronous invocation every `everyMs` until it has settled (or `timeoutMs` passes: then the last read). */
async function whenSettled(
  client: SavassanClient,
  id: string,
  { everyMs = 50, timeoutMs = 120_000 } = {},
): Promise<AsyncInvocationAnswer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = (await client.getAsyncInvocation(id)) as AsyncInvocationAnswer;
    if (settledStates.has(answer.state) || Date.now() > deadline) return answer;
    await sleep(everyMs);
  }
}

/**
 * When an attempt ended (epoch ms): its start (when the dispatcher took the event) plus its run in the sandbox. A wait
 * for a free instance between the two is not counted, so the end can be early by that wait.
 */
const attemptEnd = (attempt: AsyncInvocationAnswer['attempts'][number]) =>
  Date.parse(attempt.startedAt) + attempt.durationMs;

/**
 * Waits for the queue of `functionName` to drain: one more event is queued behind those there, and waited for.
 * Events are delivered in due-time order, so when it has run at most `asyncConcurrency - 1` others still run.
 */
async function drain(client: SavassanClient, functionName: string): Promise<void> {
  const { invocationId } = await client.invokeAsync(functionName, {});
  await whenSettled(client, invocationId, { everyMs: 100 });
}

/** 1. 202s/s against 200s/s at concurrency 32 for the same function, in interleaved rounds. */
async function measureAcceptRate(client: SavassanClient, url: string, functionName: string, requests: number) {
  const syncUrl = `${url}/v1/functions/${functionName}/invoke`;
  const asyncUrl = `${syncUrl}?async=1`;
  const perRound = Math.round(requests / acceptRounds);
  // The async path warmed too (its routes and the dispatcher's run through the invoke path).
  await load(asyncUrl, Math.min(perRound, 1000), 32, undefined, 202);
  await drain(client, functionName);
  const rps = { async: [] as number[], sync: [] as number[] };
  const errors = { async: 0, sync: 0 };
  for (let r = 0; r < acceptRounds; r++) {
    const accepted = await load(asyncUrl, perRound, 32, undefined, 202);
    rps.async.push(accepted.rps);
    errors.async += accepted.errors;
    await drain(client, functionName);
    const ran = await load(syncUrl, perRound, 32);
    rps.sync.push(ran.rps);
    errors.sync += ran.errors;
  }
  return {
    note: `no-op at concurrency 32, ${acceptRounds} interleaved rounds of ${perRound} per side; async: answers 202 (queued durably; the dispatcher runs the events meanwhile), sync: answers 200 (ran); the queue drained between rounds, outside the timing`,
    asyncAcceptRps: round(median(rps.async), 0),
    syncInvokeRps: round(median(rps.sync), 0),
    asyncOverSync: round(median(rps.async) / median(rps.sync), 2),
    roundRps: { async: rps.async.map((r) => round(r, 0)), sync: rps.sync.map((r) => round(r, 0)) },
    errors,
  };
}

/** Submits `events` events at concurrency 32 and waits until each has settled. */
async function runEvents(client: SavassanClient, url: string, functionName: string, events: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const target = new URL(`${url}/v1/functions/${functionName}/invoke?async=1`);
  const ids: string[] = [];
  let refused = 0;
  let firstAcceptAt = Number.NaN;
  let next = 0;
  const submitStart = Date.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < events) {
        const n = next++;
        const hit = await post(agent, target, `{"n":${n}}`);
        if (hit.status !== 202) {
          refused++;
          continue;
        }
        if (Number.isNaN(firstAcceptAt)) firstAcceptAt = Date.now();
        ids.push((JSON.parse(hit.body) as { invocationId: string }).invocationId);
      }
    }),
  );
  const acceptedAt = Date.now();
  agent.destroy();
  if (ids.length === 0) throw new Error(`none of ${events} events to ${functionName} was accepted`);
  // The last event accepted runs about last: wait for it cheaply, then read every event once (again for those not
  // settled yet).
  await whenSettled(client, ids.at(-1)!, { everyMs: 100 });
  const answers = await mapConcurrently(ids, readConcurrency, (id) => whenSettled(client, id, { everyMs: 200 }));
  const observedDoneAt = Date.now();
  const succeeded = answers.filter((answer) => answer.state === 'succeeded');
  // The end: the last attempt's end as the server recorded it, so the bench's polling does not set the figure.
  const lastEnd = Math.max(...answers.flatMap((answer) => answer.attempts.map(attemptEnd)));
  const seconds = (lastEnd - firstAcceptAt) / 1000;
  return {
    events,
    succeeded: succeeded.length,
    refused,
    attempts: answers.reduce((sum, answer) => sum + answer.attempts.length, 0),
    acceptSeconds: round((acceptedAt - submitStart) / 1000, 2),
    seconds: round(seconds, 2),
    eventsPerSecond: round(succeeded.length / seconds, 0),
    observedSeconds: round((observedDoneAt - firstAcceptAt) / 1000, 2),
  };
}

/** 2. Events/s end to end at the default `asyncConcurrency` and at 64, runs alternating. */
async function measureEndToEnd(client: SavassanClient, url: string, options: EventsOptions) {
  const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
  const settings = {
    default: { name: 'events-default', asyncConcurrency: defaultAsyncConcurrency },
    high: { name: `events-${highAsyncConcurrency}`, asyncConcurrency: highAsyncConcurrency },
  };
  await client.deploy(settings.default.name, noop);
  await client.deploy(settings.high.name, noop, { asyncConcurrency: highAsyncConcurrency });
  type Run = Awaited<ReturnType<typeof runEvents>>;
  const runs: Record<keyof typeof settings, Run[]> = { default: [], high: [] };
  try {
    // Both scaled out to their sandboxes first, so no sandbox starts during a run.
    for (const side of Object.values(settings)) {
      await warmUntilSteady(client, `${url}/v1/functions/${side.name}/invoke`);
      await load(`${url}/v1/functions/${side.name}/invoke?async=1`, 500, 32, undefined, 202);
      await drain(client, side.name);
    }
    for (let r = 0; r < options.endToEndRuns; r++) {
      for (const side of ['default', 'high'] as const) {
        runs[side].push(await runEvents(client, url, settings[side].name, options.events));
      }
    }
  } finally {
    await Promise.all(Object.values(settings).map((side) => client.deleteFunction(side.name)));
  }
  const figures = (side: keyof typeof settings) => ({
    asyncConcurrency: settings[side].asyncConcurrency,
    eventsPerSecond: median(runs[side].map((run) => run.eventsPerSecond)),
    runs: runs[side],
  });
  return {
    note: `${options.events} no-op events per run submitted at concurrency 32 as fast as accepted; seconds: from the first 202 to the latest attempt end the server recorded (the dispatcher's startedAt + durationMs, the run in the sandbox); observedSeconds: until the bench had read every event settled; max instances ${functionLimits.maxInstances.default} (the default) on both`,
    defaultConcurrency: figures('default'),
    highConcurrency: figures('high'),
  };
}

/** 3. A `rate(1 second)` schedule's firing delay: each tick's run (its first attempt's start) against the tick. */
async function measureScheduleDelay(client: SavassanClient, durationMs: number) {
  const functionName = 'events-scheduled';
  const schedule = 'events-beat';
  await client.deploy(functionName, await readBundle(join(repoRoot, 'bench', 'functions', 'noop')));
  try {
    await client.invoke(functionName, {});
    const created = await client.createSchedule({ name: schedule, functionName, rate: 'rate(1 second)' });
    await sleep(Math.max(0, Date.parse(created.createdAt) + durationMs + 500 - Date.now()));
    await client.pauseSchedule(schedule);
    const { lastFiredAt } = await client.getSchedule(schedule);
    await client.deleteSchedule(schedule);
    // Each tick's event, found by the idempotency key it was queued with: the same key gives back the tick's id (a
    // tick that was never queued is queued now, and counted as missed).
    const ticks = rateTicks(created.createdAt, lastFiredAt, 1000);
    const delays: number[] = [];
    let missed = 0;
    let notRun = 0;
    for (const tick of ticks) {
      const found = await client.invokeAsync(functionName, {}, { idempotencyKey: tickKey(schedule, tick) });
      if (!found.duplicate) {
        missed++;
        continue;
      }
      const answer = await whenSettled(client, found.invocationId, { timeoutMs: 30_000 });
      const firstAttempt = answer.attempts[0];
      const tickAt = tickOfKey(schedule, answer.idempotencyKey);
      if (firstAttempt === undefined || tickAt === null) {
        notRun++;
        continue;
      }
      delays.push(Date.parse(firstAttempt.startedAt) - tickAt.getTime());
    }
    return {
      note: `rate(1 second) for ${durationMs / 1000} s on a warm no-op; delay: the first attempt's startedAt minus the tick's time (from the idempotency key schedule:<name>:<tick>)`,
      ticks: ticks.length,
      missed,
      notRun,
      delayMs: summarise(delays),
      target: 'p99 <= 1000 ms',
    };
  } finally {
    await client.deleteFunction(functionName);
  }
}

/**
 * Fills a new queue with `messages` messages (100 a request, the most one takes), then creates a trigger on it and
 * reads the queue every 100 ms until it holds none, waiting or in flight.
 */
async function runTrigger(
  client: SavassanClient,
  functionName: string,
  queue: string,
  messages: number,
  maxConcurrency: number,
) {
  await client.createQueue(queue);
  for (let sent = 0; sent < messages; sent += 100) {
    const count = Math.min(100, messages - sent);
    await client.sendMessages(
      queue,
      Array.from({ length: count }, (_, i) => `{"n":${sent + i}}`),
    );
  }
  const start = Date.now();
  const trigger = await client.createTrigger({
    functionName,
    queue,
    batchSize: triggerBatchSize,
    windowSeconds: 1,
    maxConcurrency,
  });
  const deadline = start + 300_000;
  for (;;) {
    const { depth, inFlight } = await client.getQueue(queue);
    if (depth === 0 && inFlight === 0) break;
    if (Date.now() > deadline) throw new Error(`queue ${queue} still holds ${depth} + ${inFlight} in flight`);
    await sleep(100);
  }
  const seconds = (Date.now() - start) / 1000;
  await client.deleteTrigger(trigger.id);
  await client.deleteQueue(queue);
  // Each batch is one invocation record, written before its messages are acknowledged; the list holds the newest
  // 1000, more than a run's batches at the sizes used here.
  const createdAt = Date.parse(trigger.createdAt);
  const batches = (await client.listInvocations(functionName, 1000)).invocations.filter(
    (record) => Date.parse(record.createdAt) >= createdAt,
  );
  return {
    messages,
    batches: batches.length,
    failedBatches: batches.filter((record) => record.status !== 'success').length,
    seconds: round(seconds, 2),
    messagesPerSecond: round(messages / seconds, 0),
    batchesPerSecond: round(batches.length / seconds, 0),
    firstBatchSeconds: round((Math.min(...batches.map((record) => Date.parse(record.createdAt))) - start) / 1000, 2),
  };
}

/** 4. A queue trigger's throughput at the default `maxConcurrency` and at 16, runs alternating. */
async function measureTrigger(client: SavassanClient, url: string, options: EventsOptions) {
  const functionName = 'events-trigger';
  await client.deploy(functionName, await readBundle(join(repoRoot, 'bench', 'functions', 'noop')));
  const settings = { default: defaultTriggerConcurrency, high: highTriggerConcurrency };
  type Run = Awaited<ReturnType<typeof runTrigger>>;
  const runs: Record<keyof typeof settings, Run[]> = { default: [], high: [] };
  try {
    await warmUntilSteady(client, `${url}/v1/functions/${functionName}/invoke`);
    for (let r = 0; r < options.triggerRuns; r++) {
      for (const side of ['default', 'high'] as const) {
        const queue = `events-trigger-${side}-${r}`;
        runs[side].push(await runTrigger(client, functionName, queue, options.queueMessages, settings[side]));
      }
    }
  } finally {
    await client.deleteFunction(functionName);
  }
  const figures = (side: keyof typeof settings) => ({
    maxConcurrency: settings[side],
    messagesPerSecond: median(runs[side].map((run) => run.messagesPerSecond)),
    batchesPerSecond: median(runs[side].map((run) => run.batchesPerSecond)),
    runs: runs[side],
  });
  return {
    note: `${options.queueMessages} messages sent to a new queue beforehand (100 a request), then a trigger created on it (batchSize ${triggerBatchSize}, windowSeconds 1, the default) for the warm no-op; seconds: from the trigger's creation request until a read of the queue (every 100 ms) found depth 0 and inFlight 0, so it includes the runner's pick-up of the new trigger (it reads the trigger list every second); batches: the function's invocation records since the trigger's creation; firstBatchSeconds: until the first one's record; max instances ${functionLimits.maxInstances.default} (the default) on both`,
    defaultConcurrency: figures('default'),
    highConcurrency: figures('high'),
  };
}

/** The events section on a server of its own: bwrap where it runs, else the process sandbox. */
export async function measureEvents(options: EventsOptions) {
  const bwrapSkipped = bwrapSkipReason();
  const server: ServerProcess =
    bwrapSkipped === null
      ? await startBwrapServer()
      : await startServer(['--no-examples', '--queue-wait', '30', '--log-level', 'error']);
  try {
    const client = new SavassanClient({ url: server.url });
    const functionName = 'events-noop';
    await client.deploy(functionName, await readBundle(join(repoRoot, 'bench', 'functions', 'noop')));
    await warmUntilSteady(client, `${server.url}/v1/functions/${functionName}/invoke`);
    const acceptRate = await measureAcceptRate(client, server.url, functionName, options.acceptRequests);
    await client.deleteFunction(functionName);
    return {
      sandbox: bwrapSkipped === null ? 'bwrap' : 'process',
      ...(bwrapSkipped === null ? {} : { bwrapSkipped }),
      acceptRate,
      endToEnd: await measureEndToEnd(client, server.url, options),
      scheduleDelay: await measureScheduleDelay(client, options.scheduleMs),
      queueTrigger: await measureTrigger(client, server.url, options),
    };
  } finally {
    await server.cleanup();
  }
}

/** The section's sizes: the full run's, or the quick run's. */
export function eventsOptions(quick: boolean): EventsOptions {
  return quick
    ? { acceptRequests: 2000, events: 500, endToEndRuns: 1, scheduleMs: 5000, queueMessages: 1000, triggerRuns: 1 }
    : {
        acceptRequests: 16_000,
        events: 2000,
        endToEndRuns: 3,
        scheduleMs: 20_000,
        queueMessages: 5000,
        triggerRuns: 3,
      };
}

if (runsAlone(import.meta.url)) {
  await runSectionAlone('events', (quick) => measureEvents(eventsOptions(quick)));
}
