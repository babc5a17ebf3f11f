import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cgroups } from './cgroups.js';

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
