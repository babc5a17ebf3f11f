import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import type { UpgradeStatus } from '../core/control-plane-view.js';
import { isPlatformError } from '../core/errors.js';
import { poolKey } from '../core/types.js';
import type { InstanceRef, ProvisionRequest } from '../core/types.js';
import { ControlReplica } from './control-replica.js';
import type { ControlSnapshot } from './control-state.js';
import type { FollowEvent } from './leader-host.js';
import { ReplicatedControlState } from './replicated-state.js';
import type { ControlStateParts, SnapshotMeta } from './replicated-state.js';

/** What the cluster wiring hands the state: the memory adapters, reporting to it. */
const parts: ControlStateParts = {
  pool: (options) => new MemoryPool(options),
  queue: (options) => new MemoryProvisionQueue({ capacity: 100, ...options }),
};

const meta: SnapshotMeta = { leaderId: 'm1', term: 7, routingVersion: 3, rollouts: ['fn'], schedules: 2 };
const lease = { holder: 'gw', leaseMs: 10_000 };

function instance(instanceId: string): InstanceRef {
  return {
    instanceId,
    functionName: 'fn',
    incarnation: 'i1',
    version: 1,
    nodeId: 'n1',
    createdAt: 0,
    initMs: 0,
    invocations: 0,
    idleSince: 0,
  };
}

const key = poolKey(instance('x'));
const request: ProvisionRequest = {
  functionName: 'fn',
  incarnation: 'i1',
  version: 1,
  reason: 'demand',
  requestedAt: 1,
};

const upgrade: UpgradeStatus = {
  target: '0.2.0',
  to: { version: '0.2.0', build: 'b', protocol: 1 },
  from: [{ version: '0.1.0', build: 'a', protocol: 1 }],
  state: 'running',
  step: 'start gateway 1 of 1',
  started: [],
  retired: [],
  toRetire: [],
  startedAt: 1,
  updatedAt: 1,
};

/** A snapshot without what differs between two takes of the same state. */
function comparable(snapshot: ControlSnapshot): Omit<ControlSnapshot, 'takenAt'> {
  const { takenAt: _takenAt, ...rest } = snapshot;
  return { ...rest, pool: { ...rest.pool, waiters: [] } };
}

/** Events as they travel: JSON. */
function overTheWire(event: FollowEvent): FollowEvent {
  return JSON.parse(JSON.stringify(event)) as FollowEvent;
}

describe('ReplicatedControlState', () => {
  it('gives a subscriber the snapshot, then every change in order, batched per turn', async () => {
    const state = new ReplicatedControlState({ parts });
    await state.pool.push(instance('a'));
    const events: FollowEvent[] = [];
    const unsubscribe = state.subscribe((event) => events.push(event), meta);
    assert.equal(events.length, 1);
    const first = events[0]!;
    assert.ok('snapshot' in first);
    assert.equal(first.snapshot.seq, 1);
    assert.deepEqual(
      first.snapshot.pool.idle[key]?.map((i) => i.instanceId),
      ['a'],
    );
    assert.equal(first.snapshot.leaderId, 'm1');

    await state.pool.push(instance('b'));
    await state.pool.checkout(key, lease);
    await state.queue.push(request);
    state.setUpgrade(upgrade);
    assert.equal(events.length, 1, 'changes go out on the next turn');
    await nextTurn();
    assert.equal(events.length, 2);
    const batch = events[1]!;
    assert.ok('changes' in batch);
    assert.equal(batch.firstSeq, 2);
    assert.deepEqual(
      batch.changes.map((change) => Object.keys(change)[0]),
      ['pool', 'pool', 'queue', 'upgrade'],
    );
    assert.equal(state.seq, 5);

    unsubscribe();
    await state.pool.push(instance('c'));
    await nextTurn();
    assert.equal(events.length, 2);
    await state.close();
  });

  it('is followed exactly by a ControlReplica, which becomes the next leader state', async () => {
    const state = new ReplicatedControlState({ parts });
    const replica = new ControlReplica();
    for (const id of ['a', 'b', 'c']) await state.pool.push(instance(id));
    state.subscribe((event) => replica.apply(overTheWire(event)), meta);
    assert.equal(replica.appliedSeq, 3);

    await state.pool.checkout(key, lease);
    await state.pool.checkout(key, lease);
    const checkedOut = await state.pool.checkout(key, lease);
    const waiting = state.pool.wait(key, { ...lease, timeoutMs: 30_000 });
    await state.queue.push(request);
    await state.queue.push({ ...request, requestedAt: 2 });
    await state.queue.pop(0);
    await nextTurn();
    await state.pool.push(checkedOut!); // to the waiter
    await state.pool.retire(poolKey({ functionName: 'gone', incarnation: 'i1', version: 1 }));
    state.setUpgrade(upgrade);
    await nextTurn();

    assert.equal(replica.appliedSeq, state.seq);
    assert.deepEqual(replica.upgrade, upgrade);
    assert.deepEqual(comparable(replica.snapshot()), comparable(state.snapshot(meta)));

    // The follower takes the lead: its state goes on from the same seq with the same pool.
    await state.close();
    assert.equal((await waiting)?.kind, 'instance');
    const next = replica.promote(parts);
    assert.equal(next.seq, replica.appliedSeq);
    assert.deepEqual(await next.pool.stats(key), { idle: 0, checkedOut: 3, waiters: 0 });
    assert.deepEqual(await next.queue.size(), 1);
    await next.pool.release('a');
    assert.equal(next.seq, replica.appliedSeq + 1);
    await next.close();
  });

  it('hands its waiters over in the snapshot a new leader starts from', async () => {
    const state = new ReplicatedControlState({ parts });
    const waiting = state.pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    state.pause();
    const snapshot = state.snapshot(meta);
    assert.deepEqual(
      snapshot.pool.waiters.map((waiter) => waiter.id),
      ['w1'],
    );
    state.pool.handOff(new Error('moved'));
    await assert.rejects(waiting, /moved/);

    const next = ReplicatedControlState.fromSnapshot(JSON.parse(JSON.stringify(snapshot)) as ControlSnapshot, parts);
    assert.equal(next.seq, snapshot.seq);
    await next.pool.push(instance('a'));
    const item = await next.pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    assert.equal(item?.kind === 'instance' && item.instance.instanceId, 'a');
    await Promise.all([state.close(), next.close()]);
  });

  it('holds writes while paused until resumed', async () => {
    const state = new ReplicatedControlState({ parts });
    assert.equal(state.paused, false);
    await state.whenResumed();
    state.pause();
    assert.equal(state.paused, true);
    let resumed = false;
    const waiting = state.whenResumed().then(() => (resumed = true));
    await nextTurn();
    assert.equal(resumed, false);
    state.resume();
    await waiting;
    assert.equal(resumed, true);
    assert.equal(state.paused, false);
    await state.close();
  });

  it('keeps only the last changes in its backlog', async () => {
    const state = new ReplicatedControlState({ parts, backlog: 5 });
    for (let n = 0; n < 12; n++) await state.pool.push(instance(`i${n}`));
    assert.equal(state.seq, 12);
    assert.equal(state.since(7)?.length, 5);
    assert.deepEqual(
      state
        .since(9)
        ?.map((change) => 'pool' in change && change.pool.op === 'idle' && change.pool.instances[0]?.instanceId),
      ['i9', 'i10', 'i11'],
    );
    assert.equal(state.since(6), null);
    assert.deepEqual(state.since(12), []);
    assert.equal(state.since(13), null);

    // A follower that comes back within the backlog gets the changes it missed, not a snapshot.
    const back: FollowEvent[] = [];
    state.subscribe((event) => back.push(event), meta, { after: 10 });
    assert.equal(back.length, 1);
    assert.ok('changes' in back[0]! && back[0].firstSeq === 11 && back[0].changes.length === 2);
    const behind: FollowEvent[] = [];
    state.subscribe((event) => behind.push(event), meta, { after: 2 });
    assert.ok('snapshot' in behind[0]!);
    await state.close();
  });

  it('does not send a subscriber the changes its snapshot already holds', async () => {
    const state = new ReplicatedControlState({ parts });
    const early = new ControlReplica();
    state.subscribe((event) => early.apply(event), meta);
    await state.pool.push(instance('a'));
    const late = new ControlReplica();
    state.subscribe((event) => late.apply(event), meta); // after a change not yet sent
    await state.pool.push(instance('b'));
    await nextTurn();
    assert.equal(early.appliedSeq, 2);
    assert.equal(late.appliedSeq, 2);
    assert.deepEqual(comparable(late.snapshot()), comparable(early.snapshot()));

    // Numbering holds while the only subscriber leaves and another joins within one turn.
    const leaving = state.subscribe(() => undefined, meta);
    await state.pool.push(instance('c'));
    leaving();
    await state.pool.push(instance('d'));
    const joining = new ControlReplica();
    state.subscribe((event) => joining.apply(event), meta);
    await state.pool.push(instance('e'));
    await nextTurn();
    assert.equal(joining.appliedSeq, 5);
    assert.deepEqual(comparable(joining.snapshot()), comparable(state.snapshot(meta)));
    await state.close();
  });
});

describe('ControlReplica', () => {
  it('refuses changes that do not continue where it is (a gap), and changes before any snapshot', async () => {
    const replica = new ControlReplica();
    assert.equal(replica.appliedSeq, -1);
    assert.throws(
      () => replica.apply({ firstSeq: 1, changes: [] }),
      (err) => isPlatformError(err, 'CONFLICT') && /gap/.test(err.message),
    );
    assert.throws(
      () => replica.snapshot(),
      (err) => isPlatformError(err, 'UNAVAILABLE'),
    );

    const state = new ReplicatedControlState({ parts });
    await state.pool.push(instance('a'));
    replica.apply({ snapshot: state.snapshot(meta) });
    assert.equal(replica.appliedSeq, 1);
    const change = { pool: { op: 'renew' as const, instanceId: 'a', expiresAt: 1 } };
    assert.throws(
      () => replica.apply({ firstSeq: 3, changes: [change] }),
      (err) => isPlatformError(err, 'CONFLICT') && /gap/.test(err.message),
    );
    assert.throws(
      () => replica.apply({ firstSeq: 1, changes: [change] }),
      (err) => isPlatformError(err, 'CONFLICT') && /gap/.test(err.message),
    );
    assert.equal(replica.appliedSeq, 1);
    replica.apply({ firstSeq: 2, changes: [{ upgrade }] });
    assert.equal(replica.appliedSeq, 2);
    assert.deepEqual(replica.upgrade, upgrade);
    await state.close();
  });
});
