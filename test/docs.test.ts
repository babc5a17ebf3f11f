// The README's CLI, HTTP API and error references are generated from the code (`npm run docs`): this fails when a
// command, option, route or error code changed and the README was not regenerated.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from './helpers/server-process.js';

test('the README references match the commands, the OpenAPI document and the error catalogue', () => {
  const result = spawnSync(process.execPath, ['scripts/docs.mjs', '--check'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(result.status, 0, `${result.stderr}${result.stdout}`);
});
