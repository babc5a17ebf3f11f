// Asynchronous invocations across a SIGKILL of the server: every event answered with 202 (durably queued, with the
// default `--durability process`) runs to success once the server starts again on the same data dir, whether it was
// running, queued, or accepted a moment before the kill. Delivery is at least once: an event that was running when
// the server died is delivered again once its visibility runs out, so duplicates are counted (and reported), losses
// fail the test.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { strToU8, zipSync } from 'fflate';
import type { AsyncInvocationAnswer } from '../../src/client/client.js';
import { eventually, sandboxPids, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

/** Takes about 300 ms and has no other effect. */
const steady = zipSync({
  'index.js': strToU8('exports.handler = async () => { await new Promise((r) => setTimeout(r, 300)); return 1; };'),
});
/** `--queue-wait 1`: an event is received for its timeout (2 s) plus 6 s before it is delivered again. */
const serverArgs = ['--no-examples', '--queue-wait', '1', '--durability', 'process'];

const servers: ServerProcess[] = [];
/** What the server says of each asynchronous invocation in `ids`. */
const answersOf = (server: ServerProcess, ids: string[]) =>
  Promise.all(ids.map((id) => server.client.getAsyncInvocation(id) as Promise<AsyncInvocationAnswer>));
after(async () => {
  for (const server of servers.reverse()) await server.cleanup();
});

it('runs every accepted event after a SIGKILL of the server: running, queued and just accepted', async (t) => {
  const first = await startServer(serverArgs);
  servers.push(first);
  await first.client.deploy('steady', steady, { timeoutSeconds: 2, asyncConcurrency: 2 });
  const accepted: string[] = [];
  for (let i = 0; i < 40; i++) accepted.push((await first.client.invokeAsync('steady', { i })).invocationId);
  // Some events run (two at a time) while the rest wait.
  const states = async () => (await answersOf(first, accepted)).map((a) => a.state);
  const seen = await eventually(states, (s) => s.includes('running'), 10_000);
  assert.ok(seen.includes('running') && seen.includes('queued'), `states before the kill: ${seen.join(' ')}`);

  // Events keep arriving until the server dies: each one answered 202 counts as accepted.
  let submitting = true;
  const acceptedLate: string[] = [];
  const submitters = Array.from({ length: 4 }, async (_, w) => {
    for (let n = 0; submitting; n++) {
      try {
        acceptedLate.push((await first.client.invokeAsync('steady', { w, n })).invocationId);
      } catch {
        return; // the server is gone (or the answer was lost with it: not accepted)
      }
    }
  });
  await eventually(
    () => Promise.resolve(acceptedLate.length),
    (n) => n >= 5,
  );
  await first.stop('SIGKILL');
  submitting = false;
  await Promise.all(submitters);
  accepted.push(...acceptedLate);
  // The sandboxes notice their agent is gone and exit by themselves.
  await eventually(
    () => sandboxPids(first.dataDir),
    (pids) => pids.length === 0,
  );

  const second = await startServer(serverArgs, first.dataDir);
  servers.push(second);
  // Every event the queue holds: those accepted, and those whose 202 the kill cut off (queued all the same).
  const queued = queuedEvents(second.dataDir, 'steady');
  const missing = accepted.filter((id) => !queued.includes(id));
  assert.deepEqual(missing, [], `${missing.length} of ${accepted.length} accepted events are not in the queue`);
  const answers = await eventually(
    () => answersOf(second, queued),
    (all) => all.every((a) => a.state === 'succeeded' || a.state === 'failed' || a.state === 'dead_lettered'),
    90_000,
  );
  const notSucceeded = answers.filter((a) => a.state !== 'succeeded').map((a) => `${a.invocationId} ${a.state}`);
  assert.deepEqual(notSucceeded, [], `${notSucceeded.length} of ${queued.length} queued events did not succeed`);

  // Each event's successful attempt names its invocation record, which the restarted server has.
  for (const answer of answers) {
    const last = answer.attempts.at(-1);
    assert.equal(last?.status, 'success', answer.invocationId);
    assert.equal((await second.client.getInvocation(last.invocationId!)).status, 'success');
  }
  // A delivery that left no attempt died with the server; the event was delivered again.
  const redelivered = answers.filter((a) => a.deliveryCount > a.attempts.length).length;
  const earlier = answers.flatMap((a) => a.attempts.slice(0, -1).map((attempt) => attempt.status));
  const records = (await second.client.listInvocations('steady', 1000)).invocations.length;
  assert.ok(records >= queued.length, `${records} invocation records for ${queued.length} events`);
  assert.ok(redelivered >= 1, 'an event running at the kill was delivered again');
  t.diagnostic(
    `${accepted.length} events accepted (${acceptedLate.length} while the kill came), ` +
      `${queued.length - accepted.length} more queued whose answer the kill cut off; ${redelivered} delivered again, ` +
      `${earlier.length} attempts beyond one (${earlier.join(', ') || 'none'}), ` +
      `${records - queued.length} invocation records beyond one per event (runs done twice)`,
  );
});

/** The ids of the events of `functionName` in the queue, read from the server's database (a second connection). */
function queuedEvents(dataDir: string, functionName: string): string[] {
  const db = new BetterSqlite3(join(dataDir, 'savassan.db'), { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare<[string], { id: string }>('select id from queued_invocations where function_name = ? order by id')
      .all(functionName)
      .map((row) => row.id);
  } finally {
    db.close();
  }
}
