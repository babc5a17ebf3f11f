// `savassan version` through the real CLI (`bin/savassan.js`), of this installation and of a copy with a build id.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { cliPath, repoRoot } from '../helpers/server-process.js';

function run(cli: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('savassan version', () => {
  let version: string;
  /** Build B: an installation copied from this one (bin/, dist/, package.json, node_modules linked), with a build id. */
  let other: string;

  before(async () => {
    version = (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    other = await mkdtemp(join(tmpdir(), 'sv-build-b-'));
    await cp(join(repoRoot, 'bin'), join(other, 'bin'), { recursive: true });
    await cp(join(repoRoot, 'dist'), join(other, 'dist'), { recursive: true });
    await cp(join(repoRoot, 'package.json'), join(other, 'package.json'));
    await symlink(join(repoRoot, 'node_modules'), join(other, 'node_modules'));
  });
  after(async () => {
    await rm(other, { recursive: true, force: true });
  });

  it('prints the version, build and control protocol of this installation, as text and as JSON', async () => {
    const text = await run(cliPath, ['version']);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, `savassan ${version} (build dev, control protocol 1)\n`);
    const json = await run(cliPath, ['version', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout, `${JSON.stringify({ version, build: 'dev', protocol: 1 })}\n`);
  });

  it('prints the build id of another installation, and refuses one that is not a build id', async () => {
    const cli = join(other, 'bin', 'savassan.js');
    await writeFile(join(other, 'build-id'), 'b-42\n');
    const json = await run(cli, ['version', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { version, build: 'b-42', protocol: 1 });

    await writeFile(join(other, 'build-id'), 'not a build id\n');
    const bad = await run(cli, ['version']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^\[INVALID_CONFIG\] .*build-id must hold/m);
    assert.equal(bad.stdout, '');
  });
});
