import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

import { launchArgsOf } from './cluster-commands.js';

describe('launchArgsOf', () => {
  it('keeps the arguments after the role, with the data dir resolved', () => {
    const argv = ['/usr/bin/node', '/opt/savassan/bin/savassan.js', 'gateway', '--port', '8080', '--id', 'gw-1'];
    assert.deepEqual(launchArgsOf(argv, 'gateway', '.savassan'), [
      '--port',
      '8080',
      '--id',
      'gw-1',
      '--data-dir',
      resolve('.savassan'),
    ]);
  });

  it('replaces a --data-dir given in either form', () => {
    const argv = ['node', 'savassan.js', 'manager', '--data-dir', 'rel', '--json', '--data-dir=other', '--etcd', 'x'];
    assert.deepEqual(launchArgsOf(argv, 'manager', '/srv/sv'), ['--json', '--etcd', 'x', '--data-dir', '/srv/sv']);
  });
});
