// The leader-held state as the cluster builds it: the memory adapters inside the replicated control state.
import { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import { PlatformError } from '../core/errors.js';
import type { HeldReplica, HeldState } from '../control-plane/control-node.js';
import { ControlReplica } from '../control-plane/control-replica.js';
import type { ControlSnapshot } from '../control-plane/control-state.js';
import { ReplicatedControlState, type ControlStateParts } from '../control-plane/replicated-state.js';

function parts(queueCapacity: number): ControlStateParts {
  return {
    pool: (options) => new MemoryPool(options),
    queue: (options) => new MemoryProvisionQueue({ capacity: queueCapacity, ...options }),
  };
}

/** The state a leader holds: from a snapshot (a handover, a follower's copy) or empty. */
export function openHeldState(snapshot: ControlSnapshot | null, options: { queueCapacity: number }): HeldState {
  const state = new ReplicatedControlState({ parts: parts(options.queueCapacity), from: snapshot ?? undefined });
  return {
    pool: state.pool,
    queue: state.queue,
    get seq() {
      return state.seq;
    },
    get upgrade() {
      return state.upgrade;
    },
    subscribe: (listener, meta) => state.subscribe(listener, meta),
    snapshot: (meta) => state.snapshot(meta),
    pause: () => state.pause(),
    resume: () => state.resume(),
    setUpgrade: (status) => state.setUpgrade(status),
    handOff(toId) {
      state.pool.handOff(new PlatformError('UNAVAILABLE', `the control-plane lead moved to ${toId}: ask it again`));
      // Blocked pops end empty (their managers pop again, at the new leader).
      void state.queue.close();
    },
    close: () => state.close(),
  };
}

/** A follower's copy of the leader's state. */
export function openHeldReplica(): HeldReplica {
  const replica = new ControlReplica();
  return {
    get appliedSeq() {
      return replica.appliedSeq;
    },
    apply: (event) => replica.apply(event),
    snapshot: () => (replica.ready ? replica.snapshot() : null),
  };
}
