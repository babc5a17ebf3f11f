import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../src/core/errors.js';
import type {
  ActiveExecutionsCursor,
  ExecutionKey,
  ExecutionPhase,
  ExecutionRecord,
  NodeExecutionRecord,
  WorkflowStore,
} from '../../src/core/ports/workflow-store.js';
import { withReopenable } from './reopenable.js';

/** The store over one fresh, migrated, empty database, and how to close it. */
export interface WorkflowStores {
  workflows: WorkflowStore;
  close: () => Promise<void>;
}

/** What an adapter's test gives the contract. */
export interface WorkflowStoreFixture extends WorkflowStores {
  /** Open the store again over the same data once closed; left out where the data dies with it. */
  reopen?: () => Promise<WorkflowStores>;
  /** Remove the data. Called after the contract has closed every store it opened. */
  cleanup: () => Promise<void>;
}

const t0 = new Date('2026-03-01T00:00:00.000Z');

function at(seconds: number): Date {
  return new Date(t0.getTime() + seconds * 1000);
}

function specOf(nodes: string[], description?: string): { spec: string; hash: string } {
  const spec = JSON.stringify({
    ...(description === undefined ? {} : { description }),
    nodes: Object.fromEntries(nodes.map((id) => [id, { function: 'double', input: { n: '$.inputs.x' } }])),
  });
  return { spec, hash: createHash('sha256').update(spec).digest('hex') };
}

function execution(name: string, fields: Partial<ExecutionRecord> = {}): Omit<ExecutionRecord, 'revision'> {
  return {
    project: 'savassan',
    domain: 'development',
    name,
    workflowName: 'etl',
    workflowVersion: 1,
    inputs: { inline: '{"x":2}' },
    outputs: null,
    phase: 'QUEUED',
    error: null,
    origin: { kind: 'launch' },
    abortCause: null,
    createdAt: t0,
    startedAt: null,
    endedAt: null,
    updatedAt: t0,
    ...fields,
  };
}

const exec: ExecutionKey = { project: 'savassan', domain: 'development', name: 'e1' };

function node(key: string, fields: Partial<NodeExecutionRecord> = {}): Omit<NodeExecutionRecord, 'revision'> {
  return {
    execution: exec,
    key,
    nodeId: key.replace(/\[\d+\]$/, ''),
    item: null,
    phase: 'QUEUED',
    input: null,
    output: null,
    error: null,
    attempts: [],
    functionVersion: null,
    cacheHit: false,
    child: null,
    notBefore: null,
    deadline: null,
    claimedBy: null,
    createdAt: t0,
    startedAt: null,
    endedAt: null,
    updatedAt: t0,
    ...fields,
  };
}

function badRequest(err: unknown): boolean {
  return isPlatformError(err, 'BAD_REQUEST');
}

/**
 * The behaviour every `WorkflowStore` adapter must have. Each test opens its own fixture.
 *
 * @example
 * workflowStoreContract('SQLite :memory:', async () => {
 *   const metadata = await openSqliteMetadataStore(':memory:');
 *   return { workflows: new SqlWorkflowStore(metadata.shared()), close: () => metadata.close(), cleanup: async () => {} };
 * });
 */
export function workflowStoreContract(name: string, open: () => Promise<WorkflowStoreFixture>): void {
  async function withStore(
    body: (stores: WorkflowStores, reopen: (() => Promise<WorkflowStores>) | undefined) => Promise<void>,
  ): Promise<void> {
    const fixture = await open();
    await withReopenable<WorkflowStores>(
      fixture,
      fixture,
      (stores) => stores.close(),
      (reopen) => body(fixture, reopen),
    );
  }

  describe(`WorkflowStore contract: ${name}`, () => {
    it('numbers versions from 1; the latest spec again gives its version back; lists and deletes', async () => {
      await withStore(async ({ workflows }) => {
        assert.deepEqual(await workflows.listWorkflows(), []);
        assert.equal(await workflows.getWorkflow('etl'), null);
        const one = specOf(['a'], 'ünïcode ✓ loader');
        const two = specOf(['a', 'b']);

        const first = await workflows.putWorkflow('etl', one.spec, one.hash);
        assert.equal(first.created, true);
        assert.equal(first.record.version, 1);
        assert.equal(first.record.spec, one.spec);
        assert.equal(first.record.specHash, one.hash);
        assert.ok(first.record.createdAt instanceof Date);

        const again = await workflows.putWorkflow('etl', one.spec, one.hash);
        assert.deepEqual(again, { record: first.record, created: false });

        const second = await workflows.putWorkflow('etl', two.spec, two.hash);
        assert.equal(second.created, true);
        assert.equal(second.record.version, 2);
        // Only the latest counts: going back to the first spec is a new version.
        const third = await workflows.putWorkflow('etl', one.spec, one.hash);
        assert.equal(third.created, true);
        assert.equal(third.record.version, 3);
        await workflows.putWorkflow('alpha', two.spec, two.hash);

        assert.deepEqual(await workflows.getWorkflow('etl'), third.record);
        assert.deepEqual(await workflows.getWorkflow('etl', 2), second.record);
        assert.equal(await workflows.getWorkflow('etl', 4), null);
        assert.equal(await workflows.getWorkflow('etl', 0), null);
        assert.deepEqual(
          (await workflows.listWorkflowVersions('etl')).map((v) => v.version),
          [3, 2, 1],
        );
        assert.deepEqual(await workflows.listWorkflowVersions('nope'), []);

        const listed = await workflows.listWorkflows();
        assert.deepEqual(
          listed.map((w) => [w.name, w.latestVersion, w.description, w.nodeCount]),
          [
            ['alpha', 1, null, 2],
            ['etl', 3, 'ünïcode ✓ loader', 1],
          ],
        );
        const etl = listed[1]!;
        assert.deepEqual(etl.createdAt, first.record.createdAt);
        assert.deepEqual(etl.updatedAt, third.record.createdAt);

        assert.equal(await workflows.deleteWorkflow('etl'), true);
        assert.equal(await workflows.deleteWorkflow('etl'), false);
        assert.equal(await workflows.getWorkflow('etl'), null);
        assert.deepEqual(
          (await workflows.listWorkflows()).map((w) => w.name),
          ['alpha'],
        );
        // Deployed again after a delete: numbered from 1 anew.
        assert.equal((await workflows.putWorkflow('etl', two.spec, two.hash)).record.version, 1);
      });
    });

    it('concurrent deploys: different specs get different versions, the same spec one version', async () => {
      await withStore(async ({ workflows }) => {
        const specs = [specOf(['a']), specOf(['b']), specOf(['c'])];
        const results = await Promise.all(specs.map((s) => workflows.putWorkflow('etl', s.spec, s.hash)));
        assert.ok(results.every((r) => r.created));
        assert.deepEqual(results.map((r) => r.record.version).sort(), [1, 2, 3]);
        for (const r of results) assert.deepEqual(await workflows.getWorkflow('etl', r.record.version), r.record);

        const same = specOf(['z']);
        const twice = await Promise.all([
          workflows.putWorkflow('other', same.spec, same.hash),
          workflows.putWorkflow('other', same.spec, same.hash),
        ]);
        assert.deepEqual(
          twice.map((r) => r.record.version),
          [1, 1],
        );
        assert.deepEqual(twice.map((r) => r.created).sort(), [false, true]);
        assert.equal((await workflows.listWorkflowVersions('other')).length, 1);
      });
    });

    it('creates executions with every field kept; a second create of a key is a CONFLICT', async () => {
      await withStore(async ({ workflows }) => {
        assert.equal(await workflows.getExecution(exec), null);
        const record = execution('e1', {
          inputs: { blobKey: 'workflows/savassan/development/e1/inputs.json', bytes: 300_000 },
          outputs: { inline: '{"result":"ünïcode ✓"}' },
          phase: 'FAILED',
          error: { code: 'FUNCTION_ERROR', message: 'node b failed: boom', kind: 'USER' },
          origin: { kind: 'child', parent: { project: 'p', domain: 'd', name: 'parent' }, node: 'sub' },
          abortCause: 'asked to',
          startedAt: at(1),
          endedAt: at(2),
          updatedAt: at(2),
        });
        const created = await workflows.createExecution(record);
        assert.deepEqual(created, { ...record, revision: 1 });
        assert.deepEqual(await workflows.getExecution(exec), created);

        await assert.rejects(workflows.createExecution(execution('e1')), (err: unknown) =>
          isPlatformError(err, 'CONFLICT'),
        );
        // Same name in another domain or project: another execution.
        await workflows.createExecution(execution('e1', { domain: 'production' }));
        await workflows.createExecution(
          execution('e2', { origin: { kind: 'recover', from: exec }, outputs: null, phase: 'QUEUED' }),
        );
        assert.deepEqual((await workflows.getExecution({ ...exec, name: 'e2' }))?.origin, {
          kind: 'recover',
          from: exec,
        });

        const racing = await Promise.allSettled([
          workflows.createExecution(execution('race')),
          workflows.createExecution(execution('race')),
        ]);
        assert.equal(racing.filter((r) => r.status === 'fulfilled').length, 1);
        const lost = racing.find((r) => r.status === 'rejected');
        assert.ok(lost?.status === 'rejected');
        assert.ok(isPlatformError(lost.reason, 'CONFLICT'), String(lost.reason));
      });
    });

    it('updateExecution is a compare-and-set on the revision: of two updates with one revision, one wins', async () => {
      await withStore(async ({ workflows }) => {
        await workflows.createExecution(execution('e1'));
        const running = await workflows.updateExecution(exec, 1, { phase: 'RUNNING', startedAt: at(5) });
        assert.ok(running);
        assert.equal(running.revision, 2);
        assert.equal(running.phase, 'RUNNING');
        assert.deepEqual(running.startedAt, at(5));
        // Fields not in the change stay as they were.
        assert.deepEqual(running.inputs, { inline: '{"x":2}' });
        assert.deepEqual(running.createdAt, t0);
        assert.deepEqual(await workflows.getExecution(exec), running);

        assert.equal(await workflows.updateExecution(exec, 1, { phase: 'FAILED' }), null, 'stale revision');
        assert.equal(await workflows.updateExecution({ ...exec, name: 'nope' }, 1, { phase: 'FAILED' }), null);
        assert.equal((await workflows.getExecution(exec))?.phase, 'RUNNING');

        const results = await Promise.all([
          workflows.updateExecution(exec, 2, { phase: 'SUCCEEDED', outputs: { inline: '1' }, endedAt: at(9) }),
          workflows.updateExecution(exec, 2, { phase: 'ABORTED', abortCause: 'stop', endedAt: at(9) }),
        ]);
        const winners = results.filter((r) => r !== null);
        assert.equal(winners.length, 1);
        assert.equal(winners[0]!.revision, 3);
        assert.deepEqual(await workflows.getExecution(exec), winners[0]);

        const cleared = await workflows.updateExecution(exec, 3, {
          outputs: null,
          error: { code: 'INTERNAL', message: 'x', kind: 'SYSTEM' },
          updatedAt: at(10),
        });
        assert.equal(cleared?.outputs, null);
        assert.deepEqual(cleared?.error, { code: 'INTERNAL', message: 'x', kind: 'SYSTEM' });
        assert.deepEqual(cleared?.updatedAt, at(10));
      });
    });

    it('lists executions newest first, filtered, in pages after a (createdAt, name) token', async () => {
      await withStore(async ({ workflows }) => {
        // Created at 0..5 seconds, two sharing second 3; one elsewhere in each of project, domain.
        const made = [
          execution('a0', { createdAt: at(0) }),
          execution('a1', { createdAt: at(1), workflowName: 'other' }),
          execution('a2', { createdAt: at(2), phase: 'SUCCEEDED' }),
          execution('b3', { createdAt: at(3) }),
          execution('c3', { createdAt: at(3), phase: 'SUCCEEDED' }),
          execution('a5', { createdAt: at(5) }),
          execution('x9', { createdAt: at(9), project: 'elsewhere' }),
          execution('y9', { createdAt: at(9), domain: 'production' }),
        ];
        for (const record of made) await workflows.createExecution(record);
        const base = { project: 'savassan', domain: 'development' };

        const names = async (filter: Partial<Parameters<WorkflowStore['listExecutions']>[0]>) =>
          (await workflows.listExecutions({ ...base, limit: 100, ...filter })).map((e) => e.name);
        assert.deepEqual(await names({}), ['a5', 'c3', 'b3', 'a2', 'a1', 'a0']);
        assert.deepEqual(await names({ workflowName: 'etl' }), ['a5', 'c3', 'b3', 'a2', 'a0']);
        assert.deepEqual(await names({ phase: 'SUCCEEDED' }), ['c3', 'a2']);
        assert.deepEqual(await names({ project: 'elsewhere' }), ['x9']);
        assert.deepEqual(await names({ project: 'none' }), []);

        const pages: string[][] = [];
        let token: { createdAt: Date; name: string } | undefined;
        for (;;) {
          const page = await workflows.listExecutions({ ...base, limit: 2, createdBefore: token });
          if (page.length === 0) break;
          pages.push(page.map((e) => e.name));
          const last = page[page.length - 1]!;
          token = { createdAt: last.createdAt, name: last.name };
        }
        assert.deepEqual(pages, [
          ['a5', 'c3'],
          ['b3', 'a2'],
          ['a1', 'a0'],
        ]);
        assert.deepEqual(await names({ createdBefore: { createdAt: at(3), name: 'c3' }, limit: 1 }), ['b3']);
      });
    });

    it('activeExecutions: those not in a terminal phase, oldest first, at most the limit', async () => {
      await withStore(async ({ workflows }) => {
        const phases: ExecutionPhase[] = [
          'SUCCEEDED',
          'RUNNING',
          'FAILED',
          'QUEUED',
          'ABORTED',
          'ABORTING',
          'TIMED_OUT',
          'FAILING',
          'SUCCEEDING',
          'UNDEFINED',
        ];
        // Created newest first, so the order read back is the store's, not insertion order.
        for (const [i, phase] of phases.entries()) {
          await workflows.createExecution(
            execution(`e-${phase.toLowerCase().replace('_', '-')}`, {
              phase,
              createdAt: at(100 - i),
            }),
          );
        }
        const active = await workflows.activeExecutions(100);
        assert.deepEqual(
          active.map((e) => e.phase),
          ['UNDEFINED', 'SUCCEEDING', 'FAILING', 'ABORTING', 'QUEUED', 'RUNNING'],
        );
        assert.deepEqual(
          (await workflows.activeExecutions(2)).map((e) => e.phase),
          ['UNDEFINED', 'SUCCEEDING'],
        );
        const running = active.find((e) => e.phase === 'RUNNING')!;
        await workflows.updateExecution(running, running.revision, { phase: 'SUCCEEDED' });
        assert.equal((await workflows.activeExecutions(100)).length, 5);
      });
    });

    it('activeExecutions pages on with a cursor: every active execution once, ties on createdAt by key', async () => {
      await withStore(async ({ workflows }) => {
        const made: string[] = [];
        for (let i = 0; i < 7; i += 1) {
          // Three share a creation time: the key orders them.
          const name = `p-${i}`;
          await workflows.createExecution(
            execution(name, { phase: i === 3 ? 'FAILED' : 'RUNNING', createdAt: at(i < 3 ? 1 : i) }),
          );
          if (i !== 3) made.push(name);
        }
        const seen: string[] = [];
        let after: ActiveExecutionsCursor | undefined;
        for (;;) {
          const page = await workflows.activeExecutions(2, after);
          seen.push(...page.map((e) => e.name));
          if (page.length < 2) break;
          const last = page.at(-1)!;
          after = { project: last.project, domain: last.domain, name: last.name, createdAt: last.createdAt };
        }
        assert.deepEqual(seen, made);
      });
    });

    it('createExecution with node rows writes both at once; a CONFLICT writes neither', async () => {
      await withStore(async ({ workflows }) => {
        const key = { project: 'savassan', domain: 'development', name: 'with-rows' };
        const rows = ['a', 'b'].map((id) => node(id, { execution: key }));
        const created = await workflows.createExecution(execution('with-rows'), rows);
        assert.equal(created.revision, 1);
        assert.deepEqual(
          (await workflows.listNodes(key)).map((n) => [n.key, n.revision]),
          [
            ['a', 1],
            ['b', 1],
          ],
        );
        await assert.rejects(
          workflows.createExecution(execution('with-rows'), [node('c', { execution: key })]),
          (err) => isPlatformError(err, 'CONFLICT'),
        );
        assert.deepEqual(
          (await workflows.listNodes(key)).map((n) => n.key),
          ['a', 'b'],
        );
      });
    });

    it('putNode inserts once, then compares and sets on the revision; one of two racing writers wins', async () => {
      await withStore(async ({ workflows }) => {
        await workflows.createExecution(execution('e1'));
        assert.equal(await workflows.getNode(exec, 'a'), null);
        const record = node('a', {
          phase: 'RUNNING',
          input: { inline: '{"n":2}' },
          attempts: [
            {
              attempt: 1,
              startedAt: at(1),
              endedAt: at(2),
              phase: 'FAILED',
              invocationId: 'inv-1',
              error: { code: 'FUNCTION_ERROR', message: 'boom ✗', kind: 'USER' },
            },
            { attempt: 2, startedAt: at(3), endedAt: null, phase: 'RUNNING', invocationId: null, error: null },
          ],
          functionVersion: 7,
          notBefore: at(3),
          deadline: at(60),
          claimedBy: 'boot-1234',
          startedAt: at(1),
          updatedAt: at(3),
        });
        const inserted = await workflows.putNode(record, null);
        assert.deepEqual(inserted, { ...record, revision: 1 });
        assert.deepEqual(await workflows.getNode(exec, 'a'), inserted);
        assert.equal(await workflows.putNode(node('a'), null), null, 'the row exists');
        assert.deepEqual(await workflows.getNode(exec, 'a'), inserted);

        const done = await workflows.putNode(
          {
            ...record,
            phase: 'SUCCEEDED',
            output: { blobKey: 'workflows/savassan/development/e1/a/2.json', bytes: 400_000 },
            cacheHit: true,
            claimedBy: null,
            deadline: null,
            endedAt: at(4),
            child: { project: 'savassan', domain: 'development', name: 'child-1' },
          },
          1,
        );
        assert.equal(done?.revision, 2);
        assert.equal(done?.phase, 'SUCCEEDED');
        assert.equal(done?.cacheHit, true);
        assert.deepEqual(done?.child, { project: 'savassan', domain: 'development', name: 'child-1' });
        assert.deepEqual(done?.createdAt, t0);
        assert.deepEqual(await workflows.getNode(exec, 'a'), done);
        assert.equal(await workflows.putNode({ ...record, phase: 'FAILED' }, 1), null, 'stale revision');
        assert.equal(await workflows.putNode(node('zz'), 1), null, 'no such row');

        const racing = await Promise.all([
          workflows.putNode({ ...record, phase: 'ABORTED' }, 2),
          workflows.putNode({ ...record, phase: 'TIMED_OUT' }, 2),
        ]);
        const winners = racing.filter((r) => r !== null);
        assert.equal(winners.length, 1);
        assert.deepEqual(await workflows.getNode(exec, 'a'), winners[0]);

        const inserts = await Promise.all([workflows.putNode(node('b'), null), workflows.putNode(node('b'), null)]);
        assert.equal(inserts.filter((r) => r !== null).length, 1);
      });
    });

    it("insertNodes leaves existing rows as they are; listNodes gives an execution's rows by key", async () => {
      await withStore(async ({ workflows }) => {
        await workflows.insertNodes([]);
        const existing = await workflows.putNode(node('m[1]', { item: 1, phase: 'SUCCEEDED' }), null);
        const elements = Array.from({ length: 70 }, (_, i) => node(`m[${i}]`, { item: i }));
        await workflows.insertNodes([...elements, node('m'), node('m[3]', { phase: 'FAILED', item: 3 })]);
        await workflows.insertNodes(elements);
        await workflows.putNode({ ...node('other'), execution: { ...exec, name: 'e2' } }, null);

        const rows = await workflows.listNodes(exec);
        assert.equal(rows.length, 71);
        assert.deepEqual(
          rows.map((r) => r.key),
          ['m', ...elements.map((e) => e.key)].sort(),
        );
        assert.deepEqual(await workflows.getNode(exec, 'm[1]'), existing);
        const third = await workflows.getNode(exec, 'm[3]');
        assert.equal(third?.phase, 'QUEUED', 'the first of two rows given for one key');
        assert.equal(third?.item, 3);
        assert.ok(rows.every((r) => r.revision === 1));
        assert.deepEqual(
          (await workflows.listNodes({ ...exec, name: 'e2' })).map((r) => r.key),
          ['other'],
        );
        assert.deepEqual(await workflows.listNodes({ ...exec, name: 'none' }), []);
      });
    });

    it('caches outputs by key; a second put replaces the first', async () => {
      await withStore(async ({ workflows }) => {
        const key = `double:3:${'a'.repeat(64)}`;
        assert.equal(await workflows.getCached(key), null);
        await workflows.putCached(key, { inline: '{"n":4}' });
        assert.deepEqual(await workflows.getCached(key), { inline: '{"n":4}' });
        await workflows.putCached(key, { blobKey: 'workflows/x.json', bytes: 300_000 });
        assert.deepEqual(await workflows.getCached(key), { blobKey: 'workflows/x.json', bytes: 300_000 });
        await Promise.all([
          workflows.putCached(`${key}b`, { inline: '1' }),
          workflows.putCached(`${key}b`, { inline: '1' }),
        ]);
        assert.deepEqual(await workflows.getCached(`${key}b`), { inline: '1' });
      });
    });

    it('refuses values over the bounds with BAD_REQUEST, never truncating; reads of such keys find nothing', async () => {
      await withStore(async ({ workflows }) => {
        const s = specOf(['a']);
        await assert.rejects(workflows.putWorkflow('w'.repeat(65), s.spec, s.hash), badRequest);
        await assert.rejects(workflows.putWorkflow('', s.spec, s.hash), badRequest);
        await assert.rejects(workflows.putWorkflow('etl', 'not json', s.hash), badRequest);
        await assert.rejects(workflows.putWorkflow('etl', s.spec, 'h'.repeat(65)), badRequest);
        assert.deepEqual(await workflows.listWorkflows(), []);
        assert.equal(await workflows.getWorkflow('w'.repeat(65)), null);

        await assert.rejects(workflows.createExecution(execution('n'.repeat(65))), badRequest);
        await assert.rejects(workflows.createExecution(execution('e', { project: 'p'.repeat(65) })), badRequest);
        await assert.rejects(
          workflows.createExecution(execution('e', { phase: 'DONE' as ExecutionPhase })),
          badRequest,
        );
        await assert.rejects(
          workflows.createExecution(execution('e', { createdAt: new Date(Number.NaN) })),
          badRequest,
        );
        await assert.rejects(
          workflows.createExecution(execution('e', { inputs: { inline: 'x'.repeat(4_194_305) } })),
          badRequest,
        );
        await assert.rejects(
          workflows.createExecution(execution('e', { origin: { kind: 'sideways' } as never })),
          badRequest,
        );
        assert.deepEqual(await workflows.listExecutions({ project: 'savassan', domain: 'development', limit: 10 }), []);
        assert.equal(await workflows.getExecution({ ...exec, name: 'n'.repeat(65) }), null);
        await assert.rejects(
          workflows.listExecutions({ project: 'savassan', domain: 'development', limit: 0 }),
          badRequest,
        );
        await assert.rejects(
          workflows.listExecutions({ project: 'savassan', domain: 'development', limit: 1002 }),
          badRequest,
        );
        await assert.rejects(workflows.activeExecutions(0), badRequest);

        await workflows.createExecution(execution('e1'));
        await assert.rejects(workflows.updateExecution(exec, 1, { phase: 'LOST' as ExecutionPhase }), badRequest);
        await assert.rejects(workflows.updateExecution(exec, 1, { abortCause: 'c'.repeat(4_194_305) }), badRequest);
        assert.equal((await workflows.getExecution(exec))?.revision, 1, 'nothing written');

        await assert.rejects(workflows.putNode(node('k'.repeat(97)), null), badRequest);
        await assert.rejects(workflows.putNode(node('a', { claimedBy: 'c'.repeat(256) }), null), badRequest);
        await assert.rejects(workflows.putNode(node('a', { item: -1 }), null), badRequest);
        await assert.rejects(workflows.insertNodes([node('a'), node('k'.repeat(97))]), badRequest);
        assert.deepEqual(await workflows.listNodes(exec), [], 'a refused batch inserts none of its rows');
        assert.equal(await workflows.getNode(exec, 'k'.repeat(97)), null);

        await assert.rejects(workflows.putCached('c'.repeat(193), { inline: '1' }), badRequest);
        await assert.rejects(workflows.putCached('c', { inline: 1 } as never), badRequest);
        assert.equal(await workflows.getCached('c'.repeat(193)), null);
      });
    });

    it('keeps workflows, executions, nodes and the cache across a reopen', async () => {
      await withStore(async ({ workflows, close }, reopen) => {
        if (reopen === undefined) return;
        const s = specOf(['a']);
        const version = await workflows.putWorkflow('etl', s.spec, s.hash);
        const created = await workflows.createExecution(execution('e1'));
        const inserted = await workflows.putNode(node('a'), null);
        await workflows.putCached('k', { inline: '2' });
        await close();

        const { workflows: again } = await reopen();
        assert.deepEqual(await again.getWorkflow('etl'), version.record);
        assert.deepEqual(await again.getExecution(exec), created);
        assert.deepEqual(await again.listNodes(exec), [inserted]);
        assert.deepEqual(await again.getCached('k'), { inline: '2' });
      });
    });
  });
}
