// What a caller of `savassan start --sandbox bwrap` is told when a function exits, reaches for a network it was not
// given, or sets variables Node reads as it starts: what happened, not a symptom.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { apiError, startServer, type ServerProcess } from '../helpers/server-process.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/functions/${name}/`, import.meta.url));

describe(
  'what callers of a bwrap node are told',
  { skip: !existsSync('/usr/bin/bwrap') && 'bubblewrap is not installed' },
  () => {
    let server: ServerProcess;
    let dataDir: string;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'sv-bwrap-errors-'));
      await chmod(dataDir, 0o711);
      server = await startServer(['--sandbox', 'bwrap', '--no-examples'], dataDir);
    });
    after(async () => {
      await server?.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('reports process.exit(3) as exit code 3, in the answer, the record and the log', async () => {
      await server.client.deploy('ending', await readBundle(fixture('ending')), { memoryMB: 128 });
      const err = await apiError(server.client.invoke('ending', { action: 'exit', code: 3 }));
      assert.equal(err.status, 502);
      assert.equal(err.code, 'FUNCTION_CRASHED');
      assert.equal(err.message, '[FUNCTION_CRASHED] process exited with code 3 during the invocation');
      const id = String(err.body.invocationId);
      assert.equal((await server.client.getInvocation(id)).status, 'crash');
      assert.equal(
        await server.client.invocationLog(id),
        'ending: exit\n[savassan] process exited with code 3 during the invocation\n',
      );
    });

    it('says that a function without network was deployed so when its fetch fails', async () => {
      await server.client.deploy('fetcher', await readBundle(fixture('fetcher')), { memoryMB: 128 });
      const err = await apiError(server.client.invoke('fetcher', { url: 'http://example.com/' }));
      assert.equal(err.status, 502);
      assert.equal(err.code, 'FUNCTION_ERROR');
      assert.equal(err.body.errorType, 'TypeError');
      assert.equal(
        err.body.message,
        'fetch failed (this function was deployed without network access: deploy it with --network to reach the network)',
      );
    });

    it('starts a function with the variables Node reads as it starts', async () => {
      const env = {
        NODE_OPTIONS: '--stack-trace-limit=7',
        NODE_PATH: '/var/task/lib',
        NODE_EXTRA_CA_CERTS: '/var/task/certs/ca.pem',
        TZ: 'Asia/Seoul',
      };
      await server.client.deploy('startup', await readBundle(fixture('startup-env')), { memoryMB: 128, env });
      const answer = await server.client.invoke('startup', {});
      assert.deepEqual(JSON.parse(answer.payload), {
        stackTraceLimit: 7,
        nodePath: 'found through NODE_PATH',
        tls: 'trusted',
        epoch: 'Thu Jan 01 1970 09:00:00 GMT+0900 (Korean Standard Time)',
      });
      // The variables reach the sandbox through a pipe, not a command line every local user can read. The sandbox
      // is alive (warm) now.
      const commandLines: string[] = [];
      for (const entry of await readdir('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        commandLines.push(await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''));
      }
      assert.ok(
        commandLines.some((line) => line.includes('bwrap')),
        'a bwrap sandbox runs',
      );
      for (const value of ['--stack-trace-limit=7', '/var/task/certs/ca.pem'])
        assert.ok(!commandLines.some((line) => line.includes(value)), `${value} is in a command line`);
    });

    it('starts where its own NODE_OPTIONS names a file only the host has, and keeps it from functions', async () => {
      // What a preload (a profiler, an APM agent) on the server looks like: the sandboxes' root holds no such file.
      const preload = join(dataDir, 'host-preload.cjs');
      await writeFile(preload, 'globalThis.hostPreloaded = true;\n');
      const ownDir = await mkdtemp(join(tmpdir(), 'sv-bwrap-preload-'));
      await chmod(ownDir, 0o711);
      const preloaded = await startServer(['--sandbox', 'bwrap', '--no-examples'], ownDir, {
        NODE_OPTIONS: `--require ${preload}`,
      });
      try {
        await preloaded.client.deploy('env', await readBundle(fixture('env')));
        const answer = await preloaded.client.invoke('env', { names: ['NODE_OPTIONS'] });
        assert.deepEqual(JSON.parse(answer.payload), { NODE_OPTIONS: null });
      } finally {
        await preloaded.cleanup();
      }
    });

    it('refuses at deploy, with the reason, NODE_OPTIONS it cannot honour', async () => {
      const bundle = await readBundle(fixture('startup-env'));
      const inspect = await apiError(
        server.client.deploy('inspected', bundle, { env: { NODE_OPTIONS: '--inspect=0.0.0.0:9229' } }),
      );
      assert.equal(inspect.status, 400);
      assert.equal(inspect.code, 'INVALID_CONFIG');
      assert.match(inspect.message, /NODE_OPTIONS may not hold --inspect: it opens the inspector/);
      const heap = await apiError(
        server.client.deploy('heap', bundle, { env: { NODE_OPTIONS: '--max-old-space-size=64' } }),
      );
      assert.equal(heap.status, 400);
      assert.match(heap.message, /the platform sizes the V8 heap from the function's memoryMB/);
      await assert.rejects(server.client.getFunction('inspected'));
    });
  },
);
