// The console's graph logic (web/src/workflows/graph.ts): edges from references, cycles found before a connection
// is made, the layered layout, and the linear pipeline the simple form edits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkflowSpec } from '../../src/core/workflow-spec.js';
import {
  cycleThrough,
  edgesOf,
  layerGap,
  layout,
  nodeIdFor,
  pipelineOf,
  specOfPipeline,
  withoutReferencesTo,
} from '../../web/src/workflows/graph.js';

describe('console workflow graph', () => {
  const diamond: WorkflowSpec['nodes'] = {
    a: { function: 'f', input: { n: '$.inputs.x' } },
    b: { function: 'f', input: '$.nodes.a.output' },
    c: { function: 'f', input: { $literal: '$.nodes.b.output' }, when: { ref: '$.nodes.a.output.n', greaterThan: 1 } },
    d: { function: 'f', input: ['$.nodes.b.output.n', '$.nodes.c.output[0]', '$.nodes.b.output.m'] },
  };

  it('finds one edge per referring pair, in input, when and map, skipping literals', () => {
    const edges = edgesOf({ ...diamond, e: { map: '$.nodes.d.output', function: 'f' } });
    assert.deepEqual(
      edges.map((e) => `${e.source}->${e.target} ${e.ref}`),
      [
        'a->b $.nodes.a.output',
        'a->c $.nodes.a.output.n',
        'b->d $.nodes.b.output.n',
        'c->d $.nodes.c.output[0]',
        'd->e $.nodes.d.output',
      ],
    );
  });

  it('names the cycle a new edge would close, and lets an acyclic one through', () => {
    const edges = edgesOf(diamond);
    // Either way round the diamond closes the loop.
    assert.ok(['a b d a', 'a c d a'].includes(cycleThrough(edges, 'd', 'a')?.join(' ') ?? ''));
    assert.deepEqual(cycleThrough(edges, 'b', 'b'), ['b', 'b']);
    assert.equal(cycleThrough(edges, 'b', 'c'), null);
    assert.equal(cycleThrough(edges, 'a', 'd'), null);
  });

  it('lays nodes out in longest-path layers, ordered to follow their neighbours', () => {
    const edges = [
      { source: 'a', target: 'x' },
      { source: 'b', target: 'y' },
      { source: 'x', target: 'z' },
      { source: 'a', target: 'z' },
    ];
    const at = layout(['y', 'z', 'b', 'x', 'a'], edges);
    assert.deepEqual(Object.fromEntries(Object.entries(at).map(([id, p]) => [id, p.x / layerGap])), {
      a: 0,
      b: 0,
      x: 1,
      y: 1,
      z: 2,
    });
    // x hangs off a and y off b: the barycentre sweep puts them in the same order as their parents.
    assert.equal(Math.sign((at['x']?.y ?? 0) - (at['y']?.y ?? 0)), Math.sign((at['a']?.y ?? 0) - (at['b']?.y ?? 0)));
    // A cycle (an invalid graph) still gets every node a place.
    assert.equal(
      Object.keys(
        layout(
          ['p', 'q'],
          [
            { source: 'p', target: 'q' },
            { source: 'q', target: 'p' },
          ],
        ),
      ).length,
      2,
    );
  });

  it('lays out 2000 nodes', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `n${i}`);
    const edges = ids.slice(10).map((id, i) => ({ source: `n${i - (i % 10) + ((i * 7) % 10)}`, target: id }));
    assert.equal(Object.keys(layout(ids, edges)).length, 2000);
  });

  it('turns a pipeline into a spec and back, and says why a graph is not one', () => {
    const spec = specOfPipeline(
      {
        steps: [
          { id: 'double', function: 'double' },
          { id: 'inc', function: 'inc' },
        ],
        firstInput: { n: '$.inputs.x' },
      },
      { inputs: { x: 'number' } },
    );
    assert.deepEqual(spec, {
      inputs: { x: 'number' },
      nodes: {
        double: { function: 'double', input: { n: '$.inputs.x' } },
        inc: { function: 'inc', input: '$.nodes.double.output' },
      },
      output: '$.nodes.inc.output',
    });
    assert.deepEqual(pipelineOf(spec), {
      pipeline: {
        steps: [
          { id: 'double', function: 'double' },
          { id: 'inc', function: 'inc' },
        ],
        firstInput: { n: '$.inputs.x' },
      },
    });
    assert.match((pipelineOf({ nodes: diamond }) as { reason: string }).reason, /settings|feeds|starting/);
    assert.deepEqual(
      pipelineOf({
        nodes: {
          a: { function: 'f' },
          b: { function: 'f', input: '$.nodes.a.output' },
          c: { function: 'f', input: '$.nodes.a.output' },
        },
      }),
      {
        reason: 'node a feeds 2 nodes',
      },
    );
  });

  it('makes node ids from function names and drops references to a removed node', () => {
    assert.equal(nodeIdFor('Resize_Image.v2', []), 'resize_image-v2');
    assert.equal(nodeIdFor('inc', ['inc', 'inc-2']), 'inc-3');
    assert.deepEqual(
      withoutReferencesTo(
        { a: '$.nodes.x.output', b: ['$.nodes.y.output', '$.nodes.x.output.n'], c: { $literal: '$.nodes.x.output' } },
        'x',
      ),
      {
        a: null,
        b: ['$.nodes.y.output', null],
        c: { $literal: '$.nodes.x.output' },
      },
    );
  });
});
