import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cgroups, freezingEnforcement } from './cgroups.js';

describe('Cgroups.open on a host without usable cgroups', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-cgroups-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('says why when no v1 controller is mounted', async () => {
    const result = await Cgroups.open('savassan-test', root);
    assert.ok(!(result instanceof Cgroups));
    assert.match(result.unavailable, /cgroup v1 memory controller .* is not writable/);
  });

  it('says why when cgroup v2 lacks a controller', async () => {
    const v2 = join(root, 'v2');
    await mkdir(v2);
    await writeFile(join(v2, 'cgroup.controllers'), 'cpu io\n');
    const result = await Cgroups.open('savassan-test', v2);
    assert.ok(!(result instanceof Cgroups));
    assert.match(result.unavailable, /cgroup v2 has no memory controller/);
  });
});

// The files a v1 hierarchy would hold, as plain directories: what Cgroups writes where, without the kernel.
describe('Cgroups on a cgroup v1 layout', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-cgroups-v1-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  async function layout(name: string, controllers: string[]): Promise<string> {
    const dir = join(root, name);
    for (const controller of controllers) await mkdir(join(dir, controller), { recursive: true });
    return dir;
  }

  it('gives the parent group the node budgets, and freezes and counts CPU where freezer and cpuacct exist', async () => {
    const v1 = await layout('full', ['memory', 'pids', 'cpu', 'freezer', 'cpuacct']);
    const cgroups = await Cgroups.open('savassan-test', v1, { memoryBytes: 512 * 1024 * 1024, pids: 640 });
    assert.ok(cgroups instanceof Cgroups);
    const read = (path: string) => readFile(join(v1, path), 'utf8');
    assert.equal(await read('memory/savassan-test/memory.limit_in_bytes'), String(512 * 1024 * 1024));
    assert.equal(await read('pids/savassan-test/pids.max'), '640');
    // All sandboxes together weigh one process: neither a busy host process nor CPU-bound functions take it all.
    assert.equal(await read('cpu/savassan-test/cpu.shares'), '1024');
    assert.equal(cgroups.canFreeze, true);
    assert.deepEqual(freezingEnforcement(cgroups).enforced, true);
    const group = await cgroups.create('sandbox-1', { memoryBytes: 128 * 1024 * 1024, pids: 64, cpus: 1 });
    assert.equal(group.procsFiles.length, 5, 'the sandbox joins every controller');
    await group.freeze();
    assert.equal(await read('freezer/savassan-test/sandbox-1/freezer.state'), 'FROZEN');
    await group.thaw();
    assert.equal(await read('freezer/savassan-test/sandbox-1/freezer.state'), 'THAWED');
    await writeFile(join(v1, 'cpuacct/savassan-test/sandbox-1/cpuacct.usage'), '12345\n');
    assert.equal(await group.cpuUsageNs(), 12345);
  });

  it('works without the optional controllers, says freezing is not enforced, and sets no budget unless given', async () => {
    const v1 = await layout('minimal', ['memory', 'pids', 'cpu']);
    const cgroups = await Cgroups.open('savassan-test', v1);
    assert.ok(cgroups instanceof Cgroups);
    assert.equal(cgroups.canFreeze, false);
    assert.match(freezingEnforcement(cgroups).note, /no v1 freezer controller/);
    assert.deepEqual((await readdir(join(v1, 'memory', 'savassan-test'))).includes('memory.limit_in_bytes'), false);
    const group = await cgroups.create('sandbox-1', { memoryBytes: 128 * 1024 * 1024, pids: 64, cpus: 1 });
    assert.equal(group.freezable, false);
    await group.freeze();
    assert.equal(await group.cpuUsageNs(), null);
  });

  it('makes one group for co-mounted controllers (cpuacct linked to cpu)', async () => {
    const v1 = await layout('comounted', ['memory', 'pids', 'cpu']);
    await symlink(join(v1, 'cpu'), join(v1, 'cpuacct'));
    const cgroups = await Cgroups.open('savassan-test', v1);
    assert.ok(cgroups instanceof Cgroups);
    const group = await cgroups.create('sandbox-1', { memoryBytes: 128 * 1024 * 1024, pids: 64, cpus: 1 });
    assert.equal(group.procsFiles.length, 3);
    await writeFile(join(v1, 'cpu/savassan-test/sandbox-1/cpuacct.usage'), '99');
    assert.equal(await group.cpuUsageNs(), 99);
  });
});
