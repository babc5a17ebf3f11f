import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { controlProtocolVersion } from '../core/build-info.js';
import { isPlatformError } from '../core/errors.js';
import { ownInstallDir, readBuildInfo } from './build.js';

describe('readBuildInfo', () => {
  it("reads this installation's version, with build dev when it has no build-id", async () => {
    const { version } = JSON.parse(await readFile(join(ownInstallDir, 'package.json'), 'utf8')) as { version: string };
    const build = await readBuildInfo();
    assert.equal(build.version, version);
    assert.equal(build.protocol, controlProtocolVersion);
  });

  it('reads the build id of another installation, trimmed, and refuses one that is no build text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sv-build-'));
    try {
      await writeFile(join(dir, 'package.json'), JSON.stringify({ version: '9.8.7' }));
      assert.deepEqual(await readBuildInfo(dir), { version: '9.8.7', build: 'dev', protocol: controlProtocolVersion });
      await writeFile(join(dir, 'build-id'), '  b-2026.12+rc1\n');
      assert.deepEqual(await readBuildInfo(dir), {
        version: '9.8.7',
        build: 'b-2026.12+rc1',
        protocol: controlProtocolVersion,
      });
      for (const bad of ['', 'has space', '-leading', 'x'.repeat(101), 'a/b']) {
        await writeFile(join(dir, 'build-id'), bad);
        await assert.rejects(readBuildInfo(dir), (err) => isPlatformError(err, 'INVALID_CONFIG'), bad);
      }
      await rm(join(dir, 'build-id'));
      await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'no-version' }));
      await assert.rejects(readBuildInfo(dir), (err) => isPlatformError(err, 'INVALID_CONFIG'));
      await assert.rejects(readBuildInfo(join(dir, 'missing')), (err) => isPlatformError(err, 'INVALID_CONFIG'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
