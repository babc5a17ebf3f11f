import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileWorkflow, resolveTemplate } from '../core/workflow-compile.js';
import { fn, subworkflow, when, workflow, type Ref } from './workflow-builder.js';

describe('workflow builder', () => {
  it('builds the example spec', () => {
    const wf = workflow({ inputs: { x: 'number' } });
    const x: Ref<number> = wf.input('x');
    const a = wf.node('a', fn('double', { n: x }));
    const b = wf.node('b', fn('inc', { n: a.output('n') }), { retries: 2 });
    wf.output({ result: b.output('n') });
    const json = {
      inputs: { x: 'number' },
      nodes: {
        a: { function: 'double', input: { n: '$.inputs.x' } },
        b: { function: 'inc', input: { n: '$.nodes.a.output.n' }, retries: 2 },
      },
      output: { result: '$.nodes.b.output.n' },
    };
    assert.deepEqual(wf.toJSON(), json);
    assert.deepEqual(JSON.parse(JSON.stringify(wf.toJSON())), json);
    assert.deepEqual(compileWorkflow(wf.toJSON()).order, ['a', 'b']);
  });

  it('builds map nodes, conditions, sub-workflows and escapes literal strings', () => {
    const wf = workflow({
      description: 'thumbnails',
      inputs: { keys: 'array', size: { type: 'integer', default: 128 }, mode: 'string' },
      failurePolicy: 'finishRunnable',
    });
    const list = wf.node('list', fn('list-keys', { keys: wf.input('keys') }, { qualifier: '3' }), { cache: true });
    const resize = wf.map('resize', {
      over: list.output('keys'),
      function: 'resize',
      input: ({ item, index }) => ({ key: item.get('key'), position: index, size: wf.input('size') }),
      concurrency: 4,
      retries: 1,
      timeoutSeconds: 30,
    });
    const report = wf.node(
      'report',
      subworkflow('report', { count: resize.output(0), tag: '$.not-a-ref' }, { version: 2 }),
      {
        when: when.all(
          when.greaterThan(list.output('count'), 0),
          when.not(when.equals(wf.input('mode'), 'dry-run')),
          when.any(when.exists(resize.output()), when.truthy(list.output('keys', 0), false)),
        ),
      },
    );
    wf.output({ report: report.output(), literal: { $literal: 1 } });
    const json = {
      description: 'thumbnails',
      inputs: { keys: 'array', size: { type: 'integer', default: 128 }, mode: 'string' },
      nodes: {
        list: { function: 'list-keys', qualifier: '3', input: { keys: '$.inputs.keys' }, cache: true },
        resize: {
          map: '$.nodes.list.output.keys',
          function: 'resize',
          input: { key: '$.item.key', position: '$.index', size: '$.inputs.size' },
          concurrency: 4,
          retries: 1,
          timeoutSeconds: 30,
        },
        report: {
          workflow: 'report',
          version: 2,
          input: { count: '$.nodes.resize.output[0]', tag: { $literal: '$.not-a-ref' } },
          when: {
            all: [
              { ref: '$.nodes.list.output.count', greaterThan: 0 },
              { not: { ref: '$.inputs.mode', equals: 'dry-run' } },
              {
                any: [
                  { ref: '$.nodes.resize.output', exists: true },
                  { ref: '$.nodes.list.output.keys[0]', truthy: false },
                ],
              },
            ],
          },
        },
      },
      output: { report: '$.nodes.report.output', literal: { $literal: { $literal: 1 } } },
      failurePolicy: 'finishRunnable',
    };
    assert.deepEqual(wf.toJSON(), json);
    const compiled = compileWorkflow(wf.toJSON());
    assert.deepEqual(compiled.order, ['list', 'resize', 'report']);
    assert.deepEqual(compiled.nodes['report']?.dependsOn, ['list', 'resize']);
    assert.deepEqual(
      resolveTemplate(compiled.output, { inputs: {}, outputs: () => 'r' }),
      { report: 'r', literal: { $literal: 1 } },
      'an object with a $literal key is kept as written',
    );
    assert.deepEqual(resolveTemplate(compiled.nodes['report']?.input, { inputs: {}, outputs: () => ['first'] }), {
      count: 'first',
      tag: '$.not-a-ref',
    });
  });

  it('refuses duplicate ids, undeclared inputs and bad reference keys', () => {
    const wf = workflow({ inputs: { x: 'number' } });
    wf.node('a', fn('f'));
    assert.throws(() => wf.node('a', fn('g')), /workflow node a is added twice/);
    // @ts-expect-error y is not a declared input
    assert.throws(() => wf.input('y'), /workflow input y is not declared/);
    assert.throws(() => wf.input('x').get('a.b'), /bad key "a.b"/);
    assert.throws(() => wf.input('x').get(-1), /bad index -1/);
    assert.deepEqual(workflow().toJSON(), { nodes: {} });
    const each = workflow({ inputs: { l: 'array' } });
    each.map('m', { over: each.input('l'), function: 'f', input: { all: each.input('l') } });
    assert.deepEqual(each.toJSON().nodes, { m: { map: '$.inputs.l', function: 'f', input: { all: '$.inputs.l' } } });
  });
});
