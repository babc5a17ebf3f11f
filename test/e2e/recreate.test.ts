// A function deleted while an invocation runs and created again under the same name must never be served by its
// predecessor's sandbox: versions restart at 1, so only the function's incarnation tells the two apart. Run against
// a real `savassan start`, with the warm pool in memory and in a real redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { redisServerAvailable, startRedisServer } from '../kit/redis-server.js';
import type { RedisServer } from '../kit/redis-server.js';
import { eventually, sandboxPids, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

interface Answer {
  code: string;
  secret: string | null;
  pid: number;
}

/** A bundle whose handler sleeps `event.sleepMs`, then answers its code marker and its SECRET. */
function bundle(marker: string): Uint8Array {
  const source = `
const marker = ${JSON.stringify(marker)};
exports.handler = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, event.sleepMs ?? 0));
  return { code: marker, secret: process.env.SECRET ?? null, pid: process.pid };
};
`;
  return zipSync({ 'index.js': strToU8(source) });
}

async function invoke(server: ServerProcess, event: unknown = {}): Promise<Answer> {
  const answer = await server.client.invoke('f', event);
  return JSON.parse(answer.payload) as Answer;
}

function deleteWhileBusyThenRecreate(start: () => Promise<ServerProcess>): void {
  let server: ServerProcess;

  before(async () => {
    server = await start();
  });

  after(async () => {
    await server?.cleanup();
  });

  it('serves only the new code and secret after a delete during an invocation and a re-create', async () => {
    await server.client.deploy('f', bundle('old-code'), { env: { SECRET: 'old-secret' } });
    // A warm instance, so that the slow invocation below is running (checked out) at once.
    const warm = await invoke(server);
    assert.deepEqual([warm.code, warm.secret], ['old-code', 'old-secret']);

    const busy = invoke(server, { sleepMs: 1500 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await server.client.deleteFunction('f');
    await server.client.deploy('f', bundle('new-code'), { env: { SECRET: 'new-secret' } });

    // It was running when the function was deleted, so it finishes with the code it started with.
    const finished = await busy;
    assert.deepEqual([finished.code, finished.secret], ['old-code', 'old-secret']);

    for (let i = 0; i < 5; i++) {
      const answer = await invoke(server);
      assert.deepEqual([answer.code, answer.secret], ['new-code', 'new-secret'], `invocation ${i + 1}`);
      assert.notEqual(answer.pid, finished.pid);
    }
    // The old sandbox is destroyed, not left idle with the old secret.
    const pids = await eventually(
      () => sandboxPids(server.dataDir),
      (list) => !list.includes(finished.pid),
    );
    assert.ok(!pids.includes(finished.pid), `the old sandbox (pid ${finished.pid}) still runs`);
  });
}

describe('a deleted and re-created function', () => {
  describe('with the memory pool', () => {
    deleteWhileBusyThenRecreate(() => startServer(['--no-examples']));
  });

  describe('with the pool in Redis', { skip: !redisServerAvailable() && 'redis-server is not installed' }, () => {
    let redis: RedisServer;
    before(async () => {
      redis = await startRedisServer();
    });
    after(async () => {
      await redis?.close();
    });
    deleteWhileBusyThenRecreate(() => startServer(['--no-examples', '--redis', redis.url]));
  });
});
