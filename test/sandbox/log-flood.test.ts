// A function that floods its console faster than the log can be shipped, in a real bwrap sandbox with a memory
// limit: the guest must bound what it buffers instead of being killed for it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = !existsSync('/usr/bin/bwrap')
  ? 'bubblewrap is not installed'
  : !isRoot
    ? 'the memory limit needs cgroups (root)'
    : false;

describe('a console flood in a sandbox', { skip }, () => {
  let server: ServerProcess;

  before(async () => {
    // Sandbox users must pass through the data dir (bubblewrap resolves its binds as them).
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-flood-'));
    await chmod(dataDir, 0o711);
    server = await startServer(['--sandbox', 'bwrap', '--no-examples', '--no-stem-cells'], dataDir);
  });
  after(async () => {
    await server?.cleanup();
  });

  it('keeps a 128 MB function alive through 400 MB of console output, with an honest log', async () => {
    const zip = await readBundle(join(repoRoot, 'test', 'fixtures', 'e2e', 'flood'));
    await server.client.deploy('flood', zip, { memoryMB: 128, timeoutSeconds: 120 });
    const answer = await server.client.invoke('flood', { lines: 400_000 });
    assert.deepEqual(JSON.parse(answer.payload), { wrote: 400_000 });
    const log = await server.client.invocationLog(answer.invocationId);
    assert.ok(log.startsWith('x'.repeat(1023)), 'the log starts with what the function wrote');
    assert.match(log, /\[savassan\] log truncated|characters of log output dropped/);
    // The sandbox served the flood and still serves.
    assert.deepEqual(JSON.parse((await server.client.invoke('flood', { lines: 1 })).payload), { wrote: 1 });
  });
});
