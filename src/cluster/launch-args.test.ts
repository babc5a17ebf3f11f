import assert from 'node:assert/strict';
import { it } from 'node:test';
import { launchableArgs } from './launch-args.js';

const leader = ['--etcd', 'http://10.0.0.2:2379', '--token-file', '/etc/savassan/token', '--concurrency', '9'];

it("keeps a gateway's role flags and takes etcd and the token file from the leader", () => {
  assert.deepEqual(launchableArgs('gateway', ['--port', '0', '--host=127.0.0.1', '--json'], leader), [
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--json',
    '--etcd',
    'http://10.0.0.2:2379',
    '--token-file',
    '/etc/savassan/token',
  ]);
});

it('drops what a forged etcd entry could use to redirect a secret or weaken a check', () => {
  const forged = [
    '--api-key-file',
    '/tmp/attacker-keys',
    '--etcd',
    'http://attacker:2379',
    '--token-file=/tmp/t',
    '--flyte-url',
    'http://attacker',
    '--port',
    'x\u0007',
    '--concurrency',
    '64',
  ];
  assert.deepEqual(launchableArgs('gateway', forged, []), []);
  assert.deepEqual(launchableArgs('manager', forged, ['--log-level', 'warn']), [
    '--concurrency',
    '64',
    '--log-level',
    'warn',
  ]);
});

it("gives a manager the leader's builds directory, never one from the replaced process's entry", () => {
  const own = ['--builds-dir', '/tmp/attacker-builds', '--concurrency', '4'];
  const leaderArgs = ['--builds-dir', '/opt/savassan/builds', '--log-level', 'warn'];
  assert.deepEqual(launchableArgs('manager', own, leaderArgs), [
    '--concurrency',
    '4',
    '--builds-dir',
    '/opt/savassan/builds',
    '--log-level',
    'warn',
  ]);
  // A gateway takes no builds directory.
  assert.deepEqual(launchableArgs('gateway', [], leaderArgs), ['--log-level', 'warn']);
});
