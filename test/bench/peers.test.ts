// The bench's peers serve what the payload and warm-path sections measure: workerd (from the dev dependency, no
// download) answers the no-op and echoes an event as it is; the bare server's /echo route answers the same JSON
// text; measurePayloads refuses a side that does not echo.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, it } from 'node:test';
import { startBaseline } from '../../bench/load.js';
import { eventOfSize, measurePayloads } from '../../bench/payload.js';
import { post } from '../../bench/http-post.mjs';
import { startWorkerd } from '../../bench/workerd.js';

let workerd: Awaited<ReturnType<typeof startWorkerd>>;
let bare: Awaited<ReturnType<typeof startBaseline>>;
const agent = new Agent({ keepAlive: true });

before(async () => {
  workerd = await startWorkerd();
  bare = await startBaseline('bare-server.mjs');
});

after(async () => {
  agent.destroy();
  await Promise.all([workerd.stop(), bare.stop()]);
});

it('workerd answers the no-op as the bare server does', async () => {
  const fromWorkerd = await post(agent, new URL(workerd.noopUrl), '{"n":7}');
  const fromBare = await post(agent, new URL(bare.url), '{"n":7}');
  assert.equal(fromWorkerd.status, 200);
  assert.deepEqual(JSON.parse(fromWorkerd.body), JSON.parse(fromBare.body));
  assert.deepEqual(JSON.parse(fromWorkerd.body), { ok: true, n: 7 });
});

it('workerd and the bare server echo a 100 KB event as the same text', async () => {
  const event = eventOfSize(100 * 1024);
  assert.equal(event.length, 100 * 1024 + '{"data":""}'.length);
  for (const url of [workerd.echoUrl, `${bare.url}/echo`]) {
    const hit = await post(agent, new URL(url), event);
    assert.equal(hit.status, 200);
    assert.equal(hit.body, event);
  }
});

it('measurePayloads refuses a side that answers something other than the event', async () => {
  await assert.rejects(
    measurePayloads({ bare: `${bare.url}/echo`, noop: workerd.noopUrl }, { scale: 0.001, rounds: 1 }),
    /noop did not echo a 0 B event/,
  );
});
