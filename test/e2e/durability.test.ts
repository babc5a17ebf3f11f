// A SIGKILLed server loses no acknowledged deploy or invocation record, leaves no sandbox behind, and
// starts again on the same data.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { eventually, repoRoot, sandboxPids, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const servers: ServerProcess[] = [];
after(async () => {
  for (const server of servers.reverse()) await server.cleanup();
});

it('keeps every acknowledged record across a SIGKILL of the server', async () => {
  const first = await startServer(['--no-examples']);
  servers.push(first);
  await first.client.deploy('probe', await readBundle(join(repoRoot, 'test', 'fixtures', 'e2e', 'probe')), {
    maxInstances: 4,
  });
  const acknowledged: string[] = [];
  let stop = false;
  const workers = Array.from({ length: 8 }, async () => {
    while (!stop) {
      try {
        acknowledged.push((await first.client.invoke('probe', { sleepMs: 5 })).invocationId);
      } catch {
        return; // the server is gone
      }
    }
  });
  await eventually(
    () => Promise.resolve(acknowledged.length),
    (n) => n >= 150,
    30_000,
  );
  await first.stop('SIGKILL');
  stop = true;
  await Promise.all(workers);
  assert.ok(acknowledged.length >= 150);

  // The sandboxes notice their agent is gone (their socket closes) and exit by themselves.
  assert.deepEqual(
    await eventually(
      () => sandboxPids(first.dataDir),
      (p) => p.length === 0,
    ),
    [],
  );

  const second = await startServer(['--no-examples'], first.dataDir);
  servers.push(second);
  const missing: string[] = [];
  for (const id of acknowledged) {
    try {
      await second.client.getInvocation(id);
    } catch {
      missing.push(id);
    }
  }
  assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.length} acknowledged records were lost`);
  assert.equal((await second.client.getFunction('probe')).currentVersion, 1);
  assert.equal((await second.client.invoke('probe')).start, 'cold');
});
