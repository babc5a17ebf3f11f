import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isPlatformError } from '../core/errors.js';
import { compileNodeBudget, defaultNodeMemoryMB, defaultNodePids, kernelTaskLimit } from './node-budget.js';

it('keeps a reserve of the host for the platform by default', () => {
  // 1/8 of 24 GiB, at least 512 MB, never more than half.
  assert.equal(defaultNodeMemoryMB(24_576), 24_576 - 3072);
  assert.equal(defaultNodeMemoryMB(2048), 2048 - 512);
  assert.equal(defaultNodeMemoryMB(512), 256);
  // A quarter of the kernel's tasks, at least 4096, never more than half: 192 sandboxes of 128 on pid_max 32768.
  assert.equal(defaultNodePids(32_768), 24_576);
  assert.equal(defaultNodePids(4_194_304), 3_145_728);
  assert.equal(defaultNodePids(6000), 3000);
});

it('defaults from this host, below its task limit', async () => {
  const budget = await compileNodeBudget({}, 128);
  assert.ok(budget.pids < (await kernelTaskLimit()));
  assert.ok(budget.memoryMB >= 128);
  assert.deepEqual(await compileNodeBudget({ memoryMB: 1024, pids: 256 }, 128), { memoryMB: 1024, pids: 256 });
});

it('refuses budgets that hold no sandbox', async () => {
  for (const input of [{ memoryMB: 64 }, { pids: 100 }, { memoryMB: 1.5 }]) {
    await assert.rejects(compileNodeBudget(input, 128), (err: unknown) => isPlatformError(err, 'INVALID_CONFIG'));
  }
});
