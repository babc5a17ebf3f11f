import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { IKeyValue } from 'etcd3';

import { silentLogger } from '../../core/logger.js';
import type { NodeInfo } from '../../core/ports/cluster.js';
import { memberFromKv, membershipDiff } from './etcd-membership.js';
import type { MemberState } from './etcd-membership.js';

// The diff a membership watch emits after a reconnect; test/contracts/etcd.test.ts drives it against a real etcd.

function info(nodeId: string, sandboxes = 0): NodeInfo {
  return {
    nodeId,
    agentAddress: 'a:1',
    capacity: 1,
    sandboxes,
    sandboxRuntime: 'process',
    isolating: false,
    codeCached: [],
    startedAt: 0,
  };
}

function members(...entries: [string, number, number, number?][]): Map<string, MemberState> {
  return new Map(
    entries.map(([nodeId, create, mod, sandboxes]) => [
      nodeId,
      { info: info(nodeId, sandboxes), createRevision: String(create), modRevision: String(mod) },
    ]),
  );
}

describe('membershipDiff', () => {
  it('emits leaves first, then joins, updates and re-creations in node id order', () => {
    const before = members(['a', 1, 1], ['b', 2, 2], ['c', 3, 3], ['d', 4, 4]);
    const after = members(['a', 1, 9, 5], ['c', 10, 10], ['d', 4, 4], ['e', 11, 11]);
    assert.deepEqual(membershipDiff(before, after), [
      { type: 'leave', nodeId: 'b' },
      { type: 'update', node: info('a', 5) },
      { type: 'leave', nodeId: 'c' },
      { type: 'join', node: info('c') },
      { type: 'join', node: info('e') },
    ]);
  });

  it('emits nothing when nothing changed, and every node as a join from nothing', () => {
    const now = members(['b', 2, 2], ['a', 1, 1]);
    assert.deepEqual(membershipDiff(now, now), []);
    assert.deepEqual(membershipDiff(new Map(), now), [
      { type: 'join', node: info('a') },
      { type: 'join', node: info('b') },
    ]);
  });
});

describe('memberFromKv', () => {
  const kv = (key: string, value: string): IKeyValue =>
    ({ key: Buffer.from(key), value: Buffer.from(value), create_revision: '3', mod_revision: '4' }) as IKeyValue;

  it('reads a NodeInfo written for its key', () => {
    assert.deepEqual(memberFromKv(kv('nodes/a', JSON.stringify(info('a'))), silentLogger), {
      info: info('a'),
      createRevision: '3',
      modRevision: '4',
    });
  });

  it('keeps an entry whose build, url or args are not well formed, without them', () => {
    const claims = {
      build: { version: '0.1.0', build: 'b-1', protocol: 1 },
      url: 'http://10.0.0.1:8080',
      args: ['--port', '8080', '--data-dir', '/var/lib/savassan'],
    };
    const good = { ...info('a'), ...claims };
    assert.deepEqual(memberFromKv(kv('nodes/a', JSON.stringify(good)), silentLogger)?.info, good);
    const bad = {
      ...info('a'),
      build: { version: '0.1.0', build: 'has space', protocol: 1 },
      url: 'javascript:alert(1)',
      args: ['--ok', 'line\nbreak'],
    };
    assert.deepEqual(memberFromKv(kv('nodes/a', JSON.stringify(bad)), silentLogger)?.info, info('a'));
    const mixed = { ...info('a'), build: claims.build, url: 42, args: 'not a list' };
    assert.deepEqual(memberFromKv(kv('nodes/a', JSON.stringify(mixed)), silentLogger)?.info, {
      ...info('a'),
      build: claims.build,
    });
  });

  it('ignores an entry that is not JSON or names another node', () => {
    assert.equal(memberFromKv(kv('nodes/a', '{'), silentLogger), undefined);
    assert.equal(memberFromKv(kv('nodes/a', JSON.stringify(info('b'))), silentLogger), undefined);
  });
});
