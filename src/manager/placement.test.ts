import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeInfo } from '../core/ports/cluster.js';
import { choosePlacement } from './placement.js';

function node(nodeId: string, capacity: number, sandboxes: number, codeCached: string[] = []): NodeInfo {
  return {
    nodeId,
    agentAddress: `${nodeId}:7000`,
    capacity,
    sandboxes,
    sandboxRuntime: 'bwrap',
    isolating: true,
    codeCached,
    startedAt: 0,
  };
}

describe('choosePlacement', () => {
  it('prefers the node with the most free slots', () => {
    const chosen = choosePlacement({
      nodes: [node('a', 10, 8), node('b', 10, 2), node('c', 4, 0)],
      codeSha256: 'x',
      pending: new Map(),
    });
    assert.equal(chosen?.nodeId, 'b');
  });

  it('prefers a node that already holds the code, if it has room', () => {
    const nodes = [node('a', 10, 1), node('b', 10, 4, ['x'])];
    assert.equal(choosePlacement({ nodes, codeSha256: 'x', pending: new Map() })?.nodeId, 'b');
    assert.equal(choosePlacement({ nodes, codeSha256: 'y', pending: new Map() })?.nodeId, 'a');
    // Locality gives way once the node holding the code has less than half the room of the emptiest one.
    const crowded = [node('a', 10, 1), node('b', 10, 7, ['x'])];
    assert.equal(choosePlacement({ nodes: crowded, codeSha256: 'x', pending: new Map() })?.nodeId, 'a');
    const full = [node('a', 10, 1), node('b', 10, 10, ['x'])];
    assert.equal(choosePlacement({ nodes: full, codeSha256: 'x', pending: new Map() })?.nodeId, 'a');
  });

  it('counts sandboxes on their way, and answers null when every node is full', () => {
    const nodes = [node('a', 2, 0), node('b', 2, 1)];
    assert.equal(choosePlacement({ nodes, codeSha256: 'x', pending: new Map([['a', 2]]) })?.nodeId, 'b');
    assert.equal(
      choosePlacement({
        nodes,
        codeSha256: 'x',
        pending: new Map([
          ['a', 2],
          ['b', 1],
        ]),
      }),
      null,
    );
    assert.equal(choosePlacement({ nodes: [], codeSha256: 'x', pending: new Map() }), null);
  });

  it('breaks ties by node id so the choice is stable', () => {
    const nodes = [node('c', 4, 0), node('a', 4, 0), node('b', 4, 0)];
    assert.equal(choosePlacement({ nodes, codeSha256: 'x', pending: new Map() })?.nodeId, 'a');
  });
});
