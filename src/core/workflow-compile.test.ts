import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import {
  cacheKey,
  canonicalSpecText,
  checkLaunchInputs,
  checkTargets,
  compileWorkflow,
  evaluateCondition,
  parseReference,
  resolveTemplate,
  specHash,
  type WorkflowScope,
} from './workflow-compile.js';
import {
  maxJsonDepth,
  maxWorkflowNodes,
  maxWorkflowSpecBytes,
  type CompiledWorkflow,
  type WorkflowCondition,
} from './workflow-spec.js';

const example = {
  inputs: { x: 'number' },
  nodes: {
    a: { function: 'double', input: { n: '$.inputs.x' } },
    b: { function: 'inc', input: { n: '$.nodes.a.output.n' } },
  },
  output: { result: '$.nodes.b.output.n' },
};

/** Asserts that `fn` throws BAD_REQUEST with exactly `message`. */
function rejects(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isPlatformError(err, 'BAD_REQUEST'), String(err));
    assert.equal(err.rawMessage, message);
    return true;
  });
}

function spec(nodes: Record<string, unknown>, rest: Record<string, unknown> = {}): unknown {
  return { nodes, ...rest };
}

describe('compileWorkflow', () => {
  it('compiles the example with defaults, edges and order', () => {
    const compiled = compileWorkflow(example);
    assert.deepEqual(compiled.inputs, { x: { type: 'number', required: true } });
    assert.deepEqual(compiled.nodes['b'], {
      id: 'b',
      kind: 'function',
      target: 'inc',
      qualifier: 'live',
      version: null,
      input: { n: '$.nodes.a.output.n' },
      when: null,
      map: null,
      retries: 0,
      retryDelaySeconds: 1,
      timeoutSeconds: null,
      cache: false,
      dependsOn: ['a'],
    });
    assert.deepEqual(compiled.order, ['a', 'b']);
    assert.deepEqual(compiled.output, { result: '$.nodes.b.output.n' });
    assert.equal(compiled.failurePolicy, 'failFast');
    assert.equal(compiled.spec, example);
  });

  it('orders topologically, ties by id, with edges from input, when and map', () => {
    const compiled = compileWorkflow(
      spec({
        z: { function: 'f' },
        m: { map: '$.nodes.z.output.list', function: 'g', input: { v: '$.item', i: '$.index' }, concurrency: 3 },
        c: { function: 'f', when: { ref: '$.nodes.m.output[0]', exists: true } },
        a: { function: 'f', input: ['$.nodes.c.output', { $literal: '$.nodes.q' }] },
        w: { workflow: 'child', version: 2, input: '$.nodes.z.output' },
      }),
    );
    assert.deepEqual(compiled.order, ['z', 'm', 'c', 'a', 'w']);
    assert.deepEqual(compiled.nodes['m']?.map, { ref: '$.nodes.z.output.list', concurrency: 3 });
    assert.deepEqual(compiled.nodes['m']?.dependsOn, ['z']);
    assert.deepEqual(compiled.nodes['a']?.dependsOn, ['c']);
    assert.deepEqual(compiled.nodes['c']?.dependsOn, ['m']);
    assert.deepEqual(
      [compiled.nodes['w']?.kind, compiled.nodes['w']?.target, compiled.nodes['w']?.version],
      ['workflow', 'child', 2],
    );
    const parallel = compileWorkflow(spec({ c: { function: 'f' }, b: { function: 'f' }, a: { function: 'f' } }));
    assert.deepEqual(parallel.order, ['a', 'b', 'c']);
    assert.equal(parallel.nodes['a']?.input, null);
    assert.equal(parallel.output, null);
  });

  it('takes settings in range and inputs with defaults', () => {
    const compiled = compileWorkflow({
      inputs: { n: { type: 'integer', default: 3 }, s: { type: 'string', description: 'a name' } },
      nodes: {
        a: {
          function: 'f',
          qualifier: '7',
          retries: 10,
          retryDelaySeconds: 0.5,
          timeoutSeconds: 86400,
          cache: true,
          description: 'x',
        },
      },
      failurePolicy: 'finishRunnable',
    });
    assert.deepEqual(compiled.inputs, {
      n: { type: 'integer', default: 3, required: false },
      s: { type: 'string', required: true },
    });
    const a = compiled.nodes['a'];
    assert.deepEqual(
      [a?.qualifier, a?.retries, a?.retryDelaySeconds, a?.timeoutSeconds, a?.cache],
      ['7', 10, 0.5, 86400, true],
    );
    assert.equal(compiled.failurePolicy, 'finishRunnable');
  });

  it('rejects references to unknown nodes and inputs, naming the node and the path', () => {
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f' }, b: { function: 'g', input: { n: '$.nodes.zz.output.n' } } })),
      'node b: input.n: $.nodes.zz.output.n refers to an unknown node zz',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: { list: [1, '$.inputs.y'] } } })),
      'node a: input.list[1]: $.inputs.y refers to an unknown input y',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f' } }, { output: { 'odd key': '$.nodes.b.output' } })),
      'output["odd key"]: $.nodes.b.output refers to an unknown node b',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', when: { all: [{ ref: '$.nodes.q.output', exists: true }] } } })),
      'node a: when.all[0].ref: $.nodes.q.output refers to an unknown node q',
    );
  });

  it('rejects malformed references, self-references and $.item outside a map node', () => {
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: '$.nodes.a' } })),
      'node a: input: $.nodes.a is not a reference: use $.nodes.ID.output',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: '$.foo' } })),
      'node a: input: $.foo is not a reference: a reference starts with $.inputs, $.nodes, $.item or $.index',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: '$.item[0]' } })),
      'node a: input: $.item[0] is only allowed in the input of a map node',
    );
    rejects(
      () => compileWorkflow(spec({ a: { map: '$.item', function: 'f' } })),
      'node a: map: $.item is only allowed in the input of a map node',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: { i: '$.index' } } })),
      'node a: input.i: $.index is only allowed in the input of a map node',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: { n: '$.nodes.a.output' } } })),
      'node a: input.n: $.nodes.a.output refers to node a itself',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: { $literal: 1, x: 2 } } })),
      "node a: input: $literal must be the object's only key",
    );
  });

  it('rejects cycles, naming the cycle', () => {
    rejects(
      () =>
        compileWorkflow(
          spec({ a: { function: 'f', input: '$.nodes.b.output' }, b: { function: 'f', input: '$.nodes.a.output' } }),
        ),
      'nodes a -> b -> a form a cycle',
    );
    rejects(
      () =>
        compileWorkflow(
          spec({
            x: { function: 'f' },
            c: { function: 'f', input: ['$.nodes.b.output', '$.nodes.x.output'] },
            b: { function: 'f', when: { ref: '$.nodes.d.output', truthy: true } },
            d: { function: 'f', input: '$.nodes.c.output' },
            e: { function: 'f', input: '$.nodes.d.output' },
          }),
        ),
      'nodes b -> c -> d -> b form a cycle',
    );
  });

  it('rejects type mismatches on declared inputs', () => {
    rejects(
      () => compileWorkflow(spec({ m: { map: '$.inputs.n', function: 'f' } }, { inputs: { n: 'number' } })),
      'node m: map: $.inputs.n maps over input n, declared number, not array',
    );
    compileWorkflow(spec({ m: { map: '$.inputs.n', function: 'f' } }, { inputs: { n: 'array' } }));
    compileWorkflow(spec({ m: { map: '$.inputs.n.list', function: 'f' } }, { inputs: { n: 'object' } }));
    rejects(
      () =>
        compileWorkflow(
          spec({ a: { function: 'f', when: { ref: '$.inputs.s', greaterThan: 3 } } }, { inputs: { s: 'string' } }),
        ),
      'node a: when.greaterThan: compares input s, declared string, with a number',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: '$.inputs.s.x' } }, { inputs: { s: 'boolean' } })),
      'node a: input: $.inputs.s.x reads into input s, declared boolean',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f' } }, { inputs: { n: { type: 'integer', default: 1.5 } } })),
      'inputs.n.default: expected integer, got number',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f' } }, { inputs: { n: 'float' } })),
      'inputs.n: unknown type "float": use one of string, number, integer, boolean, object, array, any',
    );
  });

  it('rejects unknown fields, bad ids and settings out of range', () => {
    rejects(
      () => compileWorkflow({ nodes: { a: { function: 'f' } }, extra: 1, more: 2 }),
      'unknown fields extra, more',
    );
    rejects(() => compileWorkflow(spec({ a: { function: 'f', retry: 2 } })), 'node a: unknown field retry');
    rejects(() => compileWorkflow(spec({ a: { function: 'f', concurrency: 2 } })), 'node a: unknown field concurrency');
    rejects(() => compileWorkflow(spec({ a: { workflow: 'w', qualifier: '1' } })), 'node a: unknown field qualifier');
    rejects(
      () => compileWorkflow(spec({ a: { workflow: 'w', cache: true } })),
      'node a: cache: not for sub-workflow nodes',
    );
    rejects(
      () => compileWorkflow(spec({ A: { function: 'f' } })),
      'nodes: invalid node id "A": use 1-63 lowercase letters, digits, _ or -, starting with a letter or digit',
    );
    rejects(
      () => compileWorkflow(spec({ [`a${'b'.repeat(63)}`]: { function: 'f' } })),
      `nodes: invalid node id "a${'b'.repeat(63)}": use 1-63 lowercase letters, digits, _ or -, starting with a letter or digit`,
    );
    compileWorkflow(spec({ [`a${'b'.repeat(62)}`]: { function: 'f' }, '0_x-y': { function: 'f' } }));
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f' } }, { inputs: { 'x.y': 'number' } })),
      'inputs: invalid input name "x.y": use 1-63 lowercase letters, digits, _ or -, starting with a letter or digit',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', retries: 11 } })),
      'node a: retries: an integer from 0 to 10, got 11',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', retryDelaySeconds: 3601 } })),
      'node a: retryDelaySeconds: a number from 0 to 3600, got 3601',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', timeoutSeconds: 0 } })),
      'node a: timeoutSeconds: a number from 1 to 86400, got 0',
    );
    rejects(
      () =>
        compileWorkflow(
          spec({ a: { map: '$.inputs.l', function: 'f', concurrency: 1001 } }, { inputs: { l: 'array' } }),
        ),
      'node a: concurrency: an integer from 1 to 1000, got 1001',
    );
    rejects(() => compileWorkflow(spec({ a: { function: 'F' } })), 'node a: function: invalid function name "F"');
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', qualifier: '01' } })),
      'node a: qualifier: a version number or an alias, got "01"',
    );
    rejects(
      () => compileWorkflow(spec({ a: { input: 1 } })),
      'node a: a node has function, map and function, or workflow',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f' } }, { failurePolicy: 'never' })),
      'failurePolicy: failFast or finishRunnable, got "never"',
    );
    rejects(() => compileWorkflow(spec({})), 'nodes: a workflow has at least one node');
    rejects(() => compileWorkflow([]), 'a workflow spec is a JSON object');
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', when: { ref: '$.inputs.x', equals: 1, exists: true } } })),
      'node a: when: a condition on ref takes exactly one of equals, notEquals, greaterThan, greaterThanOrEquals, lessThan, lessThanOrEquals, exists, truthy',
    );
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', when: { any: [] } } })),
      'node a: when.any: a non-empty list of conditions',
    );
  });

  it('takes at most maxWorkflowNodes nodes', () => {
    const nodes: Record<string, unknown> = {};
    for (let i = 0; i < maxWorkflowNodes; i++)
      nodes[`n${i}`] = { function: 'f', input: i > 0 ? `$.nodes.n${i - 1}.output` : null };
    assert.equal(compileWorkflow(spec(nodes)).order.length, maxWorkflowNodes);
    rejects(
      () => compileWorkflow(spec({ a: { function: 'f', input: 'x'.repeat(maxWorkflowSpecBytes) } })),
      `the spec is ${maxWorkflowSpecBytes + 43} bytes of JSON, over ${maxWorkflowSpecBytes}`,
    );
    nodes['extra'] = { function: 'f' };
    rejects(
      () => compileWorkflow(spec(nodes)),
      `nodes: at most ${maxWorkflowNodes} nodes, got ${maxWorkflowNodes + 1}`,
    );
  });
});

describe('nesting depth', () => {
  /** `levels` arrays nested in each other around 1. */
  function nested(levels: number): unknown {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = [value];
    return value;
  }

  it('refuses a spec nested deeper than maxJsonDepth with BAD_REQUEST, however deep', () => {
    const deep = (levels: number): unknown => spec({ a: { function: 'f', input: { v: nested(levels) } } });
    compileWorkflow(deep(maxJsonDepth - 4));
    const message = `the spec: arrays and objects nest more than ${maxJsonDepth} levels deep`;
    rejects(() => compileWorkflow(deep(maxJsonDepth)), message);
    rejects(() => compileWorkflow(deep(3000)), message);
    rejects(() => compileWorkflow(deep(200_000)), message);
  });

  it('refuses launch inputs nested deeper than maxJsonDepth', () => {
    const compiled = compileWorkflow(spec({ a: { function: 'f' } }, { inputs: { x: 'array' } }));
    assert.deepEqual(checkLaunchInputs(compiled, { x: [nested(10)] }), { x: [nested(10)] });
    rejects(
      () => checkLaunchInputs(compiled, { x: nested(3000) }),
      `inputs: arrays and objects nest more than ${maxJsonDepth} levels deep`,
    );
  });
});

describe('references', () => {
  const scope: WorkflowScope = {
    inputs: { x: 2, obj: { list: [{ id: 'a' }, { id: 'b' }] } },
    outputs: (id) => (id === 'a' ? { n: 4, dotted: [1, 2] } : undefined),
    item: { name: 'it' },
    index: 3,
  };

  it('parses references', () => {
    assert.deepEqual(parseReference('$.inputs.obj.list[1].id'), {
      root: 'inputs',
      name: 'obj',
      path: ['list', 1, 'id'],
    });
    assert.deepEqual(parseReference('$.nodes.a.output'), { root: 'nodes', name: 'a', path: [] });
    assert.deepEqual(parseReference('$.item[0][1]'), { root: 'item', name: null, path: [0, 1] });
    assert.deepEqual(parseReference('$.index'), { root: 'index', name: null, path: [] });
    for (const text of ['$.index.x', '$.inputs', '$.nodes.a.out', '$.inputs.x..y', '$.inputs.x[-1]', '$.items']) {
      assert.throws(
        () => parseReference(text),
        (err: unknown) => isPlatformError(err, 'BAD_REQUEST'),
        text,
      );
    }
  });

  it('resolves templates; a missing path is null; $literal escapes', () => {
    assert.deepEqual(
      resolveTemplate(
        {
          n: '$.inputs.x',
          id: '$.inputs.obj.list[1].id',
          out: '$.nodes.a.output',
          missing: ['$.nodes.a.output.none.deeper', '$.nodes.b.output', '$.inputs.obj.list[9]', '$.inputs.x.y'],
          item: '$.item.name',
          index: '$.index',
          lit: { $literal: '$.inputs.x' },
          plain: ['text', 1, true, null],
        },
        scope,
      ),
      {
        n: 2,
        id: 'b',
        out: { n: 4, dotted: [1, 2] },
        missing: [null, null, null, null],
        item: 'it',
        index: 3,
        lit: '$.inputs.x',
        plain: ['text', 1, true, null],
      },
    );
    assert.equal(resolveTemplate('$.inputs.x', scope), 2);
    assert.equal(resolveTemplate('$.index', { inputs: {}, outputs: () => null }), null);
  });

  it('evaluates conditions', () => {
    const when = (c: WorkflowCondition): boolean => evaluateCondition(c, scope);
    assert.equal(when({ ref: '$.inputs.x', equals: 2 }), true);
    assert.equal(when({ ref: '$.inputs.obj', equals: { list: [{ id: 'a' }, { id: 'b' }] } }), true);
    assert.equal(when({ ref: '$.inputs.obj', notEquals: { list: [] } }), true);
    assert.equal(when({ ref: '$.nodes.a.output.n', greaterThan: 3 }), true);
    assert.equal(when({ ref: '$.nodes.a.output.n', greaterThanOrEquals: 4 }), true);
    assert.equal(when({ ref: '$.nodes.a.output.n', lessThan: 4 }), false);
    assert.equal(when({ ref: '$.nodes.a.output.n', lessThanOrEquals: 4 }), true);
    assert.equal(when({ ref: '$.inputs.obj', greaterThan: -1 }), false, 'not a number');
    assert.equal(when({ ref: '$.nodes.b.output', lessThan: 1 }), false, 'null');
    assert.equal(when({ ref: '$.nodes.b.output', exists: false }), true);
    assert.equal(when({ ref: '$.nodes.a.output', exists: true }), true);
    assert.equal(when({ ref: '$.nodes.b.output', equals: null }), true);
    for (const [value, truthy] of [
      [0, false],
      ['', false],
      [[], false],
      [{}, false],
      [null, false],
      [false, false],
      [1, true],
      ['x', true],
      [[0], true],
      [{ a: null }, true],
    ] as const) {
      assert.equal(
        evaluateCondition({ ref: '$.inputs.v', truthy: true }, { inputs: { v: value }, outputs: () => null }),
        truthy,
        JSON.stringify(value),
      );
    }
    assert.equal(when({ ref: '$.inputs.x', truthy: false }), false);
    assert.equal(when({ all: [{ ref: '$.inputs.x', equals: 2 }, { not: { ref: '$.inputs.x', equals: 3 } }] }), true);
    assert.equal(
      when({
        any: [
          { ref: '$.inputs.x', equals: 3 },
          { ref: '$.inputs.x', lessThan: 1 },
        ],
      }),
      false,
    );
    assert.equal(
      evaluateCondition(
        { ref: '$.inputs.s', equals: { $literal: '$.x' } },
        { inputs: { s: '$.x' }, outputs: () => null },
      ),
      true,
    );
  });
});

describe('checkLaunchInputs', () => {
  const compiled = compileWorkflow(
    spec(
      { a: { function: 'f' } },
      {
        inputs: {
          n: 'integer',
          x: 'number',
          s: { type: 'string', default: 'hi' },
          o: { type: 'object', default: { k: [1] } },
          l: 'array',
          b: 'boolean',
          v: 'any',
        },
      },
    ),
  );
  const given = { n: 1, x: 1.5, l: [], b: false, v: null };

  it('applies defaults and keeps given values', () => {
    const out = checkLaunchInputs(compiled, given);
    assert.deepEqual(out, { ...given, s: 'hi', o: { k: [1] } });
    out['o'].k.push(2);
    assert.deepEqual(checkLaunchInputs(compiled, given)['o'], { k: [1] }, 'defaults are copied');
    assert.deepEqual(checkLaunchInputs(compileWorkflow(spec({ a: { function: 'f' } })), undefined), {});
  });

  it('rejects unknown, missing and mistyped inputs, naming them', () => {
    rejects(() => checkLaunchInputs(compiled, [1]), 'inputs: a JSON object of input names to values');
    rejects(() => checkLaunchInputs(compiled, { ...given, zz: 1 }), 'unknown input zz');
    rejects(() => checkLaunchInputs(compiled, { ...given, zz: 1, yy: 2 }), 'unknown inputs zz, yy');
    rejects(() => checkLaunchInputs(compiled, { ...given, n: undefined }), 'input n (integer) is required');
    rejects(() => checkLaunchInputs(compiled, { ...given, n: 1.5 }), 'input n: expected integer, got number');
    rejects(() => checkLaunchInputs(compiled, { ...given, n: 2 ** 53 }), 'input n: expected integer, got number');
    rejects(() => checkLaunchInputs(compiled, { ...given, x: '1' }), 'input x: expected number, got string');
    rejects(() => checkLaunchInputs(compiled, { ...given, s: null }), 'input s: expected string, got null');
    rejects(() => checkLaunchInputs(compiled, { ...given, o: [] }), 'input o: expected object, got array');
    rejects(() => checkLaunchInputs(compiled, { ...given, b: 0 }), 'input b: expected boolean, got integer');
  });
});

describe('checkTargets', () => {
  const child = compileWorkflow(
    spec({ c: { function: 'f' } }, { inputs: { n: 'number', s: { type: 'string', default: 'x' } } }),
  );
  const grandchild = compileWorkflow(spec({ g: { workflow: 'parent' } }));
  const middle = compileWorkflow(spec({ m: { workflow: 'grandchild', version: 1 } }));
  const deployed: Record<string, CompiledWorkflow> = { child, middle, grandchild };
  const lookups = {
    functionExists: (name: string) => Promise.resolve(name === 'f'),
    workflow: (name: string, version: number | null) =>
      Promise.resolve(version !== null && version > 5 ? null : (deployed[name] ?? null)),
  };
  async function rejectsAsync(json: unknown, message: string): Promise<void> {
    await assert.rejects(checkTargets(compileWorkflow(json), lookups, 'parent'), (err: unknown) => {
      assert.ok(isPlatformError(err, 'BAD_REQUEST'), String(err));
      assert.equal(err.rawMessage, message);
      return true;
    });
  }

  it('passes known targets with fitting inputs', async () => {
    await checkTargets(
      compileWorkflow(
        spec(
          {
            a: { function: 'f' },
            w: { workflow: 'child', input: { n: '$.inputs.i' } },
            v: { workflow: 'child', input: { n: 1.5, s: { $literal: '$.s' } } },
            u: { workflow: 'child', input: '$.nodes.a.output' },
          },
          { inputs: { i: 'integer' } },
        ),
      ),
      lookups,
      'parent',
    );
  });

  it('rejects unknown functions and workflows, naming the node', async () => {
    await rejectsAsync(spec({ a: { function: 'nope' } }), 'node a: function: function nope does not exist');
    await rejectsAsync(spec({ a: { workflow: 'nope' } }), 'node a: workflow: workflow nope does not exist');
    await rejectsAsync(
      spec({ a: { workflow: 'child', version: 9 } }),
      'node a: workflow: version 9 of workflow child does not exist',
    );
  });

  it('accepts the built-in tasks the platform runs and refuses other dotted names clearly', async () => {
    const withTasks = { ...lookups, builtinTasks: new Set(['savassan.plan', 'savassan.curate']) };
    await checkTargets(
      compileWorkflow(spec({ p: { function: 'savassan.plan' }, a: { function: 'f', input: '$.nodes.p.output' } })),
      withTasks,
      'parent',
    );
    await assert.rejects(
      checkTargets(compileWorkflow(spec({ p: { function: 'savassan.nope' } })), withTasks, 'parent'),
      (err: unknown) => {
        assert.ok(isPlatformError(err, 'BAD_REQUEST'), String(err));
        assert.equal(
          err.rawMessage,
          'node p: function: savassan.nope is not a built-in task (built-in tasks: savassan.curate, savassan.plan; function names have no dot)',
        );
        return true;
      },
    );
    await rejectsAsync(
      spec({ p: { function: 'savassan.plan' } }),
      'node p: function: savassan.plan is not a built-in task (this platform runs none; function names have no dot)',
    );
    assert.throws(() => compileWorkflow(spec({ p: { function: 'savassan..plan' } })), /invalid function name/);
    assert.throws(() => compileWorkflow(spec({ p: { function: '.plan' } })), /invalid function name/);
  });

  it('rejects a chain of sub-workflows that comes back to the workflow', async () => {
    await rejectsAsync(spec({ a: { workflow: 'parent' } }), 'node a: workflow: workflow parent runs itself');
    await rejectsAsync(
      spec({ a: { workflow: 'middle' } }),
      'node a: workflow: workflows parent -> middle -> grandchild -> parent form a cycle',
    );
  });

  it("checks the inputs given to a child's declared inputs", async () => {
    await rejectsAsync(
      spec({ a: { workflow: 'child', input: { n: 'one' } } }),
      'node a: input.n: workflow child takes number, got string',
    );
    await rejectsAsync(
      spec({ a: { workflow: 'child', input: { s: 'x' } } }),
      'node a: input: leaves out n, required by workflow child',
    );
    await rejectsAsync(
      spec({ a: { workflow: 'child' } }),
      'node a: input: workflow child takes an object of its inputs',
    );
    await rejectsAsync(
      spec({ a: { workflow: 'child', input: { n: 1, q: 2 } } }),
      'node a: input.q: workflow child has no input q',
    );
    await rejectsAsync(
      spec({ a: { workflow: 'child', input: { n: '$.inputs.t' } } }, { inputs: { t: 'string' } }),
      'node a: input.n: $.inputs.t is declared string, workflow child takes number',
    );
    await rejectsAsync(
      spec({ a: { workflow: 'child', input: { $literal: { n: 'x' } } } }),
      'node a: input: input n: expected number, got string',
    );
  });
});

describe('hashes', () => {
  it('hashes the canonical text: keys sorted, no spaces', () => {
    assert.equal(
      canonicalSpecText({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
    );
    assert.equal(specHash({ b: 1, a: 2 }), specHash({ a: 2, b: 1 }));
    assert.equal(specHash(example), createHash('sha256').update(canonicalSpecText(example)).digest('hex'));
    assert.notEqual(specHash({ a: 1 }), specHash({ a: 2 }));
  });

  it('keys the cache by function, version and input hash', () => {
    assert.equal(cacheKey('fn', 3, '{"n":1}'), `fn:3:${createHash('sha256').update('{"n":1}').digest('hex')}`);
  });
});
