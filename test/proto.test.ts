// The generated gRPC code is committed: this fails when src/gen is not exactly what `npm run proto` makes of proto/
// (a .proto edited without regenerating, generated code edited by hand, or another ts-proto version).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';

const root = resolve(import.meta.dirname, '..');
// Installed by scripts/setup.mjs (npm test runs it first).
const buf = join(root, 'tools', 'buf', 'node_modules', '.bin', 'buf');
const run = promisify(execFile);

async function filesOf(dir: string, base = dir, out = new Map<string, string>()): Promise<Map<string, string>> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await filesOf(path, base, out);
    else out.set(relative(base, path).split(sep).join('/'), await readFile(path, 'utf8'));
  }
  return out;
}

it('src/gen is what buf generate makes of proto/ (run `npm run proto` after editing a .proto)', async () => {
  const out = await mkdtemp(join(tmpdir(), 'sv-proto-'));
  try {
    // -o moves the template's `out: src/gen` under the temporary directory; plugin and options stay the template's.
    await run(buf, ['generate', '--template', 'buf.gen.yaml', '-o', out], { cwd: root });
    const fresh = await filesOf(join(out, 'src', 'gen'));
    const committed = await filesOf(join(root, 'src', 'gen'));
    assert.ok(fresh.size > 0, 'buf generate produced files');
    const differences = [...new Set([...fresh.keys(), ...committed.keys()])].sort().flatMap((file) => {
      if (!committed.has(file)) return [`src/gen/${file} is missing`];
      if (!fresh.has(file)) return [`src/gen/${file} is not generated from proto/ any more`];
      return fresh.get(file) === committed.get(file) ? [] : [`src/gen/${file} differs from what proto/ generates`];
    });
    assert.deepEqual(differences, [], 'run `npm run proto` and commit src/gen');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

it('proto/ passes buf lint', async () => {
  await run(buf, ['lint'], { cwd: root }).catch((err: { stdout?: string; message: string }) =>
    assert.fail(`buf lint:\n${err.stdout ?? err.message}`),
  );
});
