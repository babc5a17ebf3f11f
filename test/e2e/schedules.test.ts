// Schedules end to end through the HTTP API and the CLI against a real `savassan start` process: what the API takes
// and refuses, and a schedule's ticks queued as asynchronous invocations by the control-plane leader (read from the
// server's own database, which a second connection may read while it runs).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { strToU8, zipSync } from 'fflate';
import type { ScheduleAnswer } from '../../src/client/client.js';
import { eventually, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const bundle = zipSync({ 'index.js': strToU8('exports.handler = async (event) => event;') });

describe('schedules end to end', () => {
  let server: ServerProcess;
  const cli = (...args: string[]) => runCli(server.url, args);
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as Record<string, unknown> };
  };
  const errorOf = (answer: { body: Record<string, unknown> }) => answer.body.error as { code: string; message: string };

  /** The events queued for `functionName` by schedule `name`, as the server's database holds them. */
  const queuedBy = (functionName: string, name: string): { idempotency_key: string; payload: string }[] => {
    const db = new BetterSqlite3(join(server.dataDir, 'savassan.db'), { readonly: true, fileMustExist: true });
    try {
      return db
        .prepare<[string, string], { idempotency_key: string; payload: string }>(
          `select idempotency_key, payload from queued_invocations
           where function_name = ? and idempotency_key like ? order by id`,
        )
        .all(functionName, `schedule:${name}:%`);
    } finally {
      db.close();
    }
  };

  before(async () => {
    server = await startServer(['--no-examples']);
    await server.client.deploy('echo', bundle);
  });
  after(async () => {
    await server.cleanup();
  });

  it('creates, lists, gets, pauses, resumes and deletes schedules over the API', async () => {
    const created = await call('POST', '/v1/schedules', {
      name: 'nightly',
      functionName: 'echo',
      cron: 'cron(0 3 ? * MON-FRI *)',
      timezone: 'asia/seoul',
      event: { report: 'daily' },
      retries: 1,
      maxEventAgeSeconds: 3600,
      missed: 'skip',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const nightly = created.body as unknown as ScheduleAnswer;
    assert.deepEqual(
      { ...nightly, nextFireAt: undefined, createdAt: undefined },
      {
        name: 'nightly',
        functionName: 'echo',
        expression: 'cron(0 3 ? * MON-FRI *)',
        timezone: 'Asia/Seoul',
        event: { report: 'daily' },
        state: 'active',
        missed: 'skip',
        retries: 1,
        maxEventAgeSeconds: 3600,
        nextFireAt: undefined,
        lastFiredAt: null,
        createdAt: undefined,
      },
    );
    // 03:00 in Seoul is 18:00 UTC the day before.
    assert.match(nightly.nextFireAt ?? '', /T18:00:00\.000Z$/);

    const hourly = await server.client.createSchedule({ name: 'hourly', functionName: 'echo', rate: '1 hour' });
    assert.deepEqual([hourly.expression, hourly.timezone, hourly.event, hourly.missed], ['1 hour', 'UTC', {}, 'fire']);

    const listed = await server.client.listSchedules();
    assert.deepEqual(
      listed.schedules.map((s) => [s.name, s.nextFireAt !== null]),
      [
        ['hourly', true],
        ['nightly', true],
      ],
    );
    assert.deepEqual(await server.client.getSchedule('nightly'), nightly);

    const paused = await call('POST', '/v1/schedules/nightly/pause');
    assert.equal(paused.status, 200);
    assert.deepEqual([paused.body.state, paused.body.nextFireAt], ['paused', null]);
    const resumed = await server.client.resumeSchedule('nightly');
    assert.deepEqual([resumed.state, resumed.nextFireAt], ['active', nightly.nextFireAt]);

    assert.equal((await call('DELETE', '/v1/schedules/hourly')).status, 204);
    assert.equal((await call('DELETE', '/v1/schedules/hourly')).status, 404);
    assert.equal((await call('GET', '/v1/schedules/hourly')).status, 404);
    assert.equal((await call('POST', '/v1/schedules/hourly/pause')).status, 404);
    await server.client.deleteSchedule('nightly');
  });

  it('refuses bad input with 400 naming the problem, an unknown function with 404, a taken name with 409', async () => {
    const base = { name: 'bad', functionName: 'echo' };
    const refused: [Record<string, unknown>, number, string, RegExp][] = [
      [{ ...base, cron: '61 * * * *' }, 400, 'BAD_REQUEST', /minute/],
      [{ ...base, cron: 'rate(5 minutes)' }, 400, 'BAD_REQUEST', /cron .* is a rate expression/],
      [{ ...base, rate: 'rate(0 seconds)' }, 400, 'BAD_REQUEST', /at least 1/],
      [{ ...base, rate: 'rate(5 fortnights)' }, 400, 'BAD_REQUEST', /fortnight/],
      [
        { ...base, cron: '* * * * *', timezone: 'Mars/Olympus' },
        400,
        'BAD_REQUEST',
        /unknown time zone "Mars\/Olympus"/,
      ],
      [{ ...base, cron: '* * * * *', rate: '1 minute' }, 400, 'BAD_REQUEST', /not cron and rate/],
      [{ ...base }, 400, 'BAD_REQUEST', /one of cron, rate or at/],
      [{ ...base, rate: '1 minute', retries: -1 }, 400, 'BAD_REQUEST', /retries must be an integer from 0 to 2/],
      [{ ...base, rate: '1 minute', retries: 3 }, 400, 'BAD_REQUEST', /retries/],
      [{ ...base, rate: '1 minute', missed: 'later' }, 400, 'BAD_REQUEST', /missed must be "fire" or "skip"/],
      [{ ...base, at: '2001-01-01T00:00' }, 400, 'BAD_REQUEST', /has passed/],
      [{ ...base, name: 'Bad Name', rate: '1 minute' }, 400, 'BAD_REQUEST', /invalid schedule name/],
      [{ ...base, rate: '1 minute', event: { big: 'x'.repeat(300 * 1024) } }, 413, 'PAYLOAD_TOO_LARGE', /256 KiB/],
      [{ ...base, functionName: 'nope', rate: '1 minute' }, 404, 'NOT_FOUND', /function nope not found/],
    ];
    for (const [body, status, code, message] of refused) {
      const answer = await call('POST', '/v1/schedules', body);
      assert.equal(answer.status, status, JSON.stringify(body).slice(0, 200));
      assert.equal(errorOf(answer).code, code);
      assert.match(errorOf(answer).message, message);
    }
    assert.deepEqual((await server.client.listSchedules()).schedules, [], 'nothing was created');

    await server.client.createSchedule({ ...base, rate: '1 hour' });
    const again = await call('POST', '/v1/schedules', { ...base, rate: '2 hours' });
    assert.equal(again.status, 409);
    assert.equal(errorOf(again).code, 'CONFLICT');
    assert.equal((await server.client.getSchedule('bad')).expression, '1 hour', 'the first one stays');
    await server.client.deleteSchedule('bad');
  });

  it('manages schedules with the CLI', async () => {
    const add = await cli('schedule', 'add', 'every5', 'echo', '--cron', '*/5 * * * *', '--tz', 'Asia/Seoul');
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /^created schedule every5 \(echo, \*\/5 \* \* \* \* Asia\/Seoul\): next fire \S+Z\n$/);
    const json = await cli(
      'schedule',
      'add',
      'launch',
      'echo',
      '--at',
      'at(2099-01-01T09:00)',
      '--event',
      '{"go":true}',
      '--retries',
      '2',
      '--max-event-age',
      '120',
      '--missed',
      'skip',
      '--json',
    );
    assert.equal(json.code, 0, json.stderr);
    const launch = JSON.parse(json.stdout) as ScheduleAnswer;
    assert.deepEqual(
      [launch.expression, launch.event, launch.retries, launch.maxEventAgeSeconds, launch.missed, launch.nextFireAt],
      ['at(2099-01-01T09:00)', { go: true }, 2, 120, 'skip', '2099-01-01T09:00:00.000Z'],
    );

    const ls = await cli('schedule', 'ls');
    assert.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME +FUNCTION +EXPRESSION +TIMEZONE +STATE +NEXT FIRE +LAST FIRED$/);
    assert.match(lines[1] ?? '', /^every5 +echo +\*\/5 \* \* \* \* +Asia\/Seoul +active +\S+Z +-$/);
    assert.match(lines[2] ?? '', /^launch +echo +at\(2099-01-01T09:00\) +UTC +active +2099-01-01T09:00:00\.000Z +-$/);

    assert.equal((await cli('schedule', 'pause', 'every5')).stdout, 'paused schedule every5\n');
    assert.match((await cli('schedule', 'ls')).stdout, /every5 .* paused +- +-/);
    assert.match((await cli('schedule', 'resume', 'every5')).stdout, /^resumed schedule every5: next fire \S+Z\n$/);

    const twice = await cli('schedule', 'add', 'x', 'echo', '--rate', '1 minute', '--at', '2099-01-01T00:00');
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /^\[BAD_REQUEST\] a schedule takes one of cron, rate or at, not rate and at/);
    const badRate = await cli('schedule', 'add', 'x', 'echo', '--rate', 'rate(5 parsecs)');
    assert.equal(badRate.code, 1);
    assert.match(badRate.stderr, /^\[BAD_REQUEST\] .*parsecs/);
    const missing = await cli('schedule', 'rm', 'ghost');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^\[NOT_FOUND\] schedule ghost not found/);

    assert.equal((await cli('schedule', 'rm', 'every5')).stdout, 'deleted schedule every5\n');
    assert.equal((await cli('schedule', 'rm', 'launch')).code, 0);
  });

  it('queues an asynchronous invocation for each tick of a rate(1 second) schedule, once per tick', async () => {
    const tick = await server.client.createSchedule({
      name: 'tick',
      functionName: 'echo',
      rate: 'rate(1 second)',
      event: { beat: 1 },
    });
    // Poll the queue until three ticks are there (each stays in the queue once it has run).
    let queued = queuedBy('echo', 'tick');
    for (const deadline = Date.now() + 60_000; queued.length < 3 && Date.now() < deadline;) {
      await sleep(200);
      queued = queuedBy('echo', 'tick');
    }
    await server.client.pauseSchedule('tick');
    queued = queuedBy('echo', 'tick');
    assert.ok(queued.length >= 3, `ticks queued: ${queued.length}\n${server.output()}`);
    const keys = queued.map((row) => row.idempotency_key);
    assert.equal(new Set(keys).size, keys.length, 'each tick once');
    // A rate's ticks count from the schedule's creation, one a second, in order (a tick the server was too busy to
    // fire within a second may be dropped for the latest one, so they need not be consecutive).
    const created = Date.parse(tick.createdAt);
    const times = keys.map((key) => Date.parse(key.replace(/^schedule:tick:/, '')));
    for (const [i, time] of times.entries()) {
      assert.equal((time - created) % 1000, 0, keys[i]);
      assert.ok(time > (times[i - 1] ?? created), keys.join(', '));
    }
    assert.deepEqual(JSON.parse(queued[0]!.payload), { source: 'schedule:tick', event: { beat: 1 } });
    const after = await server.client.getSchedule('tick');
    // The last tick, or the one before it when the pause came between a tick's queueing and its moving on.
    const lastTwo = times.slice(-2).map((time) => new Date(time).toISOString());
    assert.ok(lastTwo.includes(after.lastFiredAt ?? ''), `${after.lastFiredAt} in ${lastTwo.join(', ')}`);
    await server.client.deleteSchedule('tick');
  });

  it('runs a rate(1 second) schedule: over 5 seconds it fires 5 ± 1 times, each run once', async () => {
    await server.client.deploy('beat', bundle);
    const created = await server.client.createSchedule({ name: 'beat', functionName: 'beat', rate: 'rate(1 second)' });
    const start = Date.parse(created.createdAt);
    await sleep(Math.max(0, start + 5000 - Date.now()));
    await server.client.pauseSchedule('beat');
    const queued = queuedBy('beat', 'beat');
    assert.ok(queued.length >= 4 && queued.length <= 6, `fired ${queued.length} times in 5 s`);
    // Every tick runs, once.
    const runs = await eventually(
      () => server.client.listInvocations('beat', 100),
      (answer) => answer.invocations.length >= queued.length,
    );
    assert.equal(runs.invocations.length, queued.length);
    assert.ok(runs.invocations.every((record) => record.status === 'success'));
    await server.client.deleteSchedule('beat');
  });
});
