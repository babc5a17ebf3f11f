// Deploy settings end to end: a redeploy keeps the current settings, savassan.json and flags change them, the CLI
// prints what changed, and .savassanignore leaves files out of the bundle; through the real CLI and HTTP API.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zipSync, strToU8 } from 'fflate';
import type { DeployAnswer } from '../../src/client/client.js';
import { functionLimits } from '../../src/core/function-config.js';
import { apiError, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

/** A function that answers with the files of its bundle and the variables of its environment named in the event. */
const lister = `
const { readdirSync } = require('node:fs');
const { join } = require('node:path');
const list = (dir, prefix) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? list(join(dir, e.name), prefix + e.name + '/') : [prefix + e.name],
  );
exports.handler = async (event) => ({
  files: list(__dirname, '').sort(),
  env: Object.fromEntries((event.keys ?? []).map((key) => [key, process.env[key] ?? null])),
});
`;

/** The change lines `savassan deploy` printed under its first line, but the code's. */
const printedChanges = (stdout: string) =>
  stdout
    .split('\n')
    .slice(1)
    .filter((line) => line !== '' && !line.startsWith('  code '));

describe('deploy settings end to end', () => {
  let server: ServerProcess;
  let work: string;
  const cli = (...args: string[]) => runCli(server.url, args);
  const config = async (name: string) => (await server.client.getFunction(name)).config;
  /** Writes a function directory (paths relative to it) and returns its path. */
  const functionDir = async (name: string, files: Record<string, string> = {}) => {
    const dir = join(work, name);
    for (const [path, text] of Object.entries({ 'index.js': lister, ...files })) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    return dir;
  };
  const invoke = async (name: string, keys: string[] = []) =>
    JSON.parse((await server.client.invoke(name, { keys })).payload) as {
      files: string[];
      env: Record<string, string | null>;
    };

  before(async () => {
    server = await startServer(['--no-examples']);
    work = await mkdtemp(join(tmpdir(), 'sv-deploy-config-'));
  });
  after(async () => {
    await server.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('keeps the environment and settings on a redeploy without flags, and prints what flags change', async () => {
    const dir = await functionDir('keep');
    const first = await cli('deploy', 'keep', dir, '--env', 'A=1', '--env', 'DEBUG=1', '--timeout', '10');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^deployed keep version 1 \(code [0-9a-f]{12}\)\n$/);

    const again = await cli('deploy', 'keep', dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'keep is unchanged: version 1 is current\n');
    assert.deepEqual((await config('keep'))?.env, { A: '1', DEBUG: '1' });
    assert.equal((await config('keep'))?.timeoutSeconds, 10);

    const changed = await cli('deploy', 'keep', dir, '--timeout', '20', '--env', 'API_URL=x', '--unset-env', 'DEBUG');
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stdout, /^deployed keep version 2 /);
    assert.deepEqual(printedChanges(changed.stdout), ['  env: +API_URL, -DEBUG', '  timeout 10 → 20 s']);
    assert.deepEqual((await config('keep'))?.env, { A: '1', API_URL: 'x' });
    assert.deepEqual((await invoke('keep', ['A', 'API_URL', 'DEBUG'])).env, { A: '1', API_URL: 'x', DEBUG: null });

    const json = await cli('deploy', 'keep', dir, '--json', '--memory', '512', '--unset-env', 'NEVER');
    assert.equal(json.code, 0, json.stderr);
    assert.match(json.stderr, /--unset-env NEVER: keep has no such variable/);
    const answer = JSON.parse(json.stdout) as DeployAnswer;
    assert.equal(answer.created, true);
    assert.equal(answer.version.version, 3);
    assert.equal(answer.function.currentVersion, 3);
    assert.deepEqual(answer.changes, [{ field: 'memoryMB', from: functionLimits.memoryMB.default, to: 512 }]);

    const code = await cli('deploy', 'keep', await functionDir('keep-v2', { 'extra.txt': 'new file' }));
    assert.equal(code.code, 0, code.stderr);
    assert.match(code.stdout, /^ {2}code [0-9a-f]{12} → [0-9a-f]{12}$/m);
    assert.equal((await config('keep'))?.memoryMB, 512);

    const off = await cli('deploy', 'keep', dir, '--network');
    assert.match(off.stdout, /^ {2}network off → on$/m);
    assert.match((await cli('deploy', 'keep', dir, '--no-network')).stdout, /^ {2}network on → off$/m);
  });

  it('takes savassan.json over the current settings and flags over the file; --config names another file', async () => {
    const dir = await functionDir('layered', {
      'savassan.json': JSON.stringify({
        $schema: '../../schemas/savassan.schema.json',
        env: { FILE: 'f', SHARED: 'file' },
        timeoutSeconds: 7,
        memoryMB: 192,
      }),
      'other.json': JSON.stringify({ timeoutSeconds: null, maxInstances: 3 }),
    });
    const first = await cli('deploy', 'layered', join(work, 'keep'), '--env', 'OLD=1', '--idle', '60');
    assert.equal(first.code, 0, first.stderr);

    const layered = await cli('deploy', 'layered', dir, '--timeout', '9', '--env', 'SHARED=flag', '--env', 'FLAG=x');
    assert.equal(layered.code, 0, layered.stderr);
    assert.deepEqual(printedChanges(layered.stdout), [
      '  env: +FILE, +FLAG, +SHARED, -OLD',
      '  timeout 30 → 9 s',
      '  memory 256 → 192 MB',
    ]);
    const after = await config('layered');
    assert.deepEqual(after?.env, { FILE: 'f', SHARED: 'flag', FLAG: 'x' });
    assert.deepEqual([after?.timeoutSeconds, after?.memoryMB, after?.idleSeconds], [9, 192, 60]);
    assert.deepEqual((await invoke('layered', ['FILE', 'SHARED', 'OLD'])).env, {
      FILE: 'f',
      SHARED: 'flag',
      OLD: null,
    });

    // The named file instead of savassan.json: its null restores the default, the rest is kept.
    const other = await cli('deploy', 'layered', dir, '--config', join(dir, 'other.json'));
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(printedChanges(other.stdout), [
      `  timeout 9 → ${functionLimits.timeoutSeconds.default} s`,
      '  max instances 10 → 3',
    ]);
    assert.deepEqual((await config('layered'))?.env, { FILE: 'f', SHARED: 'flag', FLAG: 'x' });
  });

  it('refuses a savassan.json with an unknown field, naming it, and deploys nothing', async () => {
    const dir = await functionDir('typo', { 'savassan.json': '{ "timeout": 5, "memoryMB": 128 }' });
    const typo = await cli('deploy', 'typo', dir);
    assert.equal(typo.code, 1);
    assert.equal(typo.stdout, '');
    assert.match(
      typo.stderr,
      /^\[INVALID_CONFIG\] \S*typo\/savassan\.json: unknown field "timeout" \(did you mean "timeoutSeconds" for "timeout"\?\); known fields: handler, /m,
    );
    assert.equal((await apiError(server.client.getFunction('typo'))).status, 404);
    const missing = await cli('deploy', 'typo', dir, '--config', join(dir, 'none.json'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the config file \S*none\.json/);
  });

  it('leaves out of the bundle what .savassanignore names, and the deploy files themselves', async () => {
    const dir = await functionDir('ignoring', {
      '.savassanignore': '# docs and logs stay home\n\n*.md\n/logs/\nsrc/**/*.test.js\n!src/keep.test.js\n',
      'savassan.json': '{ "timeoutSeconds": 5 }',
      // Its own, or the platform adds one to a bundle without it.
      'package.json': '{ "type": "commonjs" }',
      'README.md': 'docs',
      'logs/today.log': 'log',
      'lib/logs/kept.txt': 'kept: /logs/ is anchored',
      'src/app.js': 'module.exports = {};',
      'src/deep/app.test.js': 'test',
      'src/keep.test.js': 'kept by !',
    });
    const deployed = await cli('deploy', 'ignoring', dir);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.deepEqual((await invoke('ignoring')).files, [
      'index.js',
      'lib/logs/kept.txt',
      'package.json',
      'src/app.js',
      'src/keep.test.js',
    ]);
    assert.equal((await config('ignoring'))?.timeoutSeconds, 5);
  });

  it('PUT keeps the settings a body leaves out, null restores a default, and the answer lists the changes', async () => {
    // A fixed mtime: the same text zips to the same bytes, whichever second it is.
    const zip = (text: string) =>
      zipSync({ 'index.js': [strToU8(`exports.handler = async () => ${text};`), { mtime: new Date(1980, 0, 2) }] });
    const created = await server.client.deploy('http-fn', zip('1'), { env: { A: '1' }, timeoutSeconds: 10 });
    assert.deepEqual([created.created, created.version.version, created.changes], [true, 1, []]);
    assert.equal(created.function.name, 'http-fn');

    const same = await server.client.deploy('http-fn', zip('1'));
    assert.deepEqual([same.created, same.version.version, same.changes], [false, 1, []]);

    const next = await server.client.deploy('http-fn', zip('2'), { timeoutSeconds: null, env: { B: 's3cr3t' } });
    assert.equal(next.created, true);
    assert.equal(next.version.config.timeoutSeconds, functionLimits.timeoutSeconds.default);
    assert.deepEqual(next.changes, [
      { field: 'code', from: created.version.codeSha256, to: next.version.codeSha256 },
      { field: 'env', added: ['B'], removed: ['A'], changed: [] },
      { field: 'timeoutSeconds', from: 10, to: functionLimits.timeoutSeconds.default },
    ]);
    assert.doesNotMatch(JSON.stringify(next.changes), /s3cr3t/);

    const emptied = await server.client.deploy('http-fn', zip('2'), { env: null });
    assert.deepEqual(emptied.version.config.env, {});
    assert.deepEqual(emptied.changes, [{ field: 'env', added: [], removed: ['B'], changed: [] }]);

    const bad = await apiError(server.client.deploy('http-fn', zip('2'), { memoryMB: '256' } as never));
    assert.equal(bad.status, 400);
  });
});
