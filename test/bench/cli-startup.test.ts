// The bench's CLI start-up measurement drives the real CLI against a real server, and refuses to time a CLI that
// fails (one that cannot reach its server exits fast, and would read as a fast start).
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { measureCliStartup } from '../../bench/cli-startup.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { freeLoopbackPort } from '../kit/free-port.js';

let server: ServerProcess;

before(async () => {
  server = await startServer(['--no-examples', '--no-stem-cells']);
});

after(async () => {
  await server.cleanup();
});

it('times `savassan ls` against a running server and says whether the median meets 0.3 s', () => {
  const figures = measureCliStartup(server.url, 2);
  assert.equal(figures.command, 'savassan ls');
  assert.equal(figures.lsMs.n, 2);
  assert.equal(figures.nodeSpawnMs.n, 2);
  assert.ok(figures.lsMs.p50 > 0);
  assert.equal(figures.met, figures.lsMs.p50 <= 300);
  assert.match(figures.target, /0\.3 s/);
});

it('throws instead of timing a CLI that cannot reach its server', async () => {
  const url = `http://127.0.0.1:${await freeLoopbackPort()}`;
  assert.throws(() => measureCliStartup(url, 1), /exited 1[\s\S]*UNAVAILABLE/);
});
