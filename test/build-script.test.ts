// scripts/build.mjs, which `npm start` and `npm test` run with --if-stale, on a small project of its own: it compiles
// a fresh checkout, skips the compile while no input changed, and compiles again when one was added, changed or
// removed, or when the last compile failed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, it } from 'node:test';

const repoRoot = resolve(import.meta.dirname, '..');
let project = '';

/** Runs the project's copy of scripts/build.mjs; resolves with its exit code and output. */
function build(...args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [join(project, 'scripts', 'build.mjs'), ...args], { cwd: project }, (err, out, errOut) =>
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, output: `${out}${errOut}` }),
    );
  });
}

const distA = () => join(project, 'dist', 'a.js');
const stampPath = () => join(project, 'dist', '.build-stamp');

/** Overwrites dist/a.js: it holds the marker until a compile writes it again. */
const markCompiledOutput = () => writeFile(distA(), 'marker\n');
const compiledSinceMarked = async () => (await readFile(distA(), 'utf8')) !== 'marker\n';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

let nextTime = Date.UTC(2001, 0, 1) / 1000;
/** Gives a file a modification time it never had (content edits do the same, at the clock's resolution). */
const touch = (path: string) => utimes(path, nextTime, ++nextTime);

before(async () => {
  project = await mkdtemp(join(tmpdir(), 'sv-build-'));
  await mkdir(join(project, 'scripts'));
  await mkdir(join(project, 'src'));
  await copyFile(join(repoRoot, 'scripts', 'build.mjs'), join(project, 'scripts', 'build.mjs'));
  await symlink(join(repoRoot, 'node_modules'), join(project, 'node_modules'));
  await writeFile(join(project, 'package-lock.json'), '{}\n');
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      // No default library (src/globals.d.ts declares the few global types tsc needs): a compile takes a fraction of
      // the time, and this test compiles a dozen times.
      compilerOptions: { module: 'nodenext', strict: true, noLib: true, types: [], outDir: 'dist', rootDir: '.' },
      include: ['src'],
    }),
  );
  await writeFile(
    join(project, 'tsconfig.build.json'),
    JSON.stringify({
      extends: './tsconfig.json',
      compilerOptions: { rootDir: 'src' },
      include: ['src'],
      exclude: ['src/**/*.test.ts'],
    }),
  );
  await writeFile(
    join(project, 'src', 'globals.d.ts'),
    [
      'Array<T>',
      'Boolean',
      'CallableFunction',
      'Function',
      'IArguments',
      'NewableFunction',
      'Number',
      'Object',
      'RegExp',
      'String',
    ]
      .map((type) => `interface ${type} {}\n`)
      .join(''),
  );
  await writeFile(join(project, 'src', 'a.ts'), 'export const a = 1;\n');
  await writeFile(join(project, 'src', 'b.ts'), 'export const b = 2;\n');
  await writeFile(join(project, 'src', 'a.test.ts'), 'export const t = 0;\n');
});

after(async () => {
  await rm(project, { recursive: true, force: true });
});

it('compiles a checkout that has no dist/ and stamps it', async () => {
  const { code, output } = await build('--if-stale');
  assert.equal(code, 0, output);
  assert.ok(await exists(distA()));
  assert.ok(await exists(join(project, 'dist', 'b.js')));
  assert.ok(await exists(stampPath()));
});

it('skips the compile while no input changed, and ignores changes to tests', async () => {
  await markCompiledOutput();
  let run = await build('--if-stale');
  assert.equal(run.code, 0, run.output);
  assert.match(run.output, /up to date/);
  assert.equal(await compiledSinceMarked(), false);

  await touch(join(project, 'src', 'a.test.ts'));
  run = await build('--if-stale');
  assert.match(run.output, /up to date/);
  assert.equal(await compiledSinceMarked(), false);
});

for (const input of ['src/b.ts', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) {
  it(`compiles again once ${input} changed`, async () => {
    await markCompiledOutput();
    await touch(join(project, input));
    const run = await build('--if-stale');
    assert.equal(run.code, 0, run.output);
    assert.doesNotMatch(run.output, /up to date/);
    assert.ok(await compiledSinceMarked());
    assert.match((await build('--if-stale')).output, /up to date/);
  });
}

it('compiles again once a source file was added or removed, whatever its modification time', async () => {
  const added = join(project, 'src', 'c.ts');
  await writeFile(added, 'export const c = 3;\n');
  await utimes(added, 1_000_000, 1_000_000);
  await markCompiledOutput();
  assert.equal((await build('--if-stale')).code, 0);
  assert.ok(await compiledSinceMarked());
  assert.ok(await exists(join(project, 'dist', 'c.js')));

  await unlink(added);
  await markCompiledOutput();
  assert.equal((await build('--if-stale')).code, 0);
  assert.ok(await compiledSinceMarked());
});

it('leaves no stamp after a failed compile, so the next run compiles again', async () => {
  const b = join(project, 'src', 'b.ts');
  await writeFile(b, "export const b: number = 'two';\n");
  let run = await build('--if-stale');
  assert.notEqual(run.code, 0);
  assert.equal(await exists(stampPath()), false);
  run = await build('--if-stale');
  assert.notEqual(run.code, 0);
  assert.doesNotMatch(run.output, /up to date/);

  await writeFile(b, 'export const b = 2;\n');
  assert.equal((await build('--if-stale')).code, 0);
  assert.match((await build('--if-stale')).output, /up to date/);
});

it('always compiles without --if-stale (npm run build)', async () => {
  await markCompiledOutput();
  const run = await build();
  assert.equal(run.code, 0, run.output);
  assert.ok(await compiledSinceMarked());
});
