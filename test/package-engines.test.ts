// `npm ci` installs the locked tree without an engine warning: every locked package supports the Node.js this runs
// on (run on the floor of package.json's "engines", Node 20, this is the check that matters), and package.json and
// package-lock.json agree. npm itself does the check, as a dry run from the lock file alone: it reads no registry and
// touches no node_modules.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { it } from 'node:test';

const repoRoot = resolve(import.meta.dirname, '..');

it('every locked package supports this Node.js (npm ci --engine-strict)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sv-engines-'));
  try {
    await copyFile(join(repoRoot, 'package.json'), join(dir, 'package.json'));
    await copyFile(join(repoRoot, 'package-lock.json'), join(dir, 'package-lock.json'));
    const args = ['ci', '--dry-run', '--ignore-scripts', '--offline', '--engine-strict', '--cache', join(dir, 'cache')];
    const { code, output } = await new Promise<{ code: unknown; output: string }>((done) => {
      execFile('npm', args, { cwd: dir, maxBuffer: 16 * 2 ** 20 }, (err, out, errOut) =>
        done({ code: err?.code ?? 0, output: `${out}${errOut}` }),
      );
    });
    const complaints = output.split('\n').filter((line) => /EBADENGINE|notsup|npm (error|warn)/.test(line));
    assert.deepEqual(complaints, [], `npm ci ${args.join(' ')} on Node.js ${process.version}`);
    assert.equal(code, 0, output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
