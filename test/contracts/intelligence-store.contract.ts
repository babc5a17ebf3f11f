import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../src/core/errors.js';
import type { FineTunePlan } from '../../src/core/plan.js';
import type {
  CurationRecord,
  DatasetImageRecord,
  IntelligenceRunRecord,
  IntelligenceStore,
  PlanRecord,
} from '../../src/core/ports/intelligence-store.js';
import { withReopenable } from './reopenable.js';

/** The store over one fresh, migrated, empty database, and how to close it. */
export interface IntelligenceStores {
  intelligence: IntelligenceStore;
  close: () => Promise<void>;
}

/** What an adapter's test gives the contract. */
export interface IntelligenceStoreFixture extends IntelligenceStores {
  /** Open the store again over the same data once closed; left out where the data dies with it. */
  reopen?: () => Promise<IntelligenceStores>;
  /** Remove the data. Called after the contract has closed every store it opened. */
  cleanup: () => Promise<void>;
}

const t0 = new Date('2026-03-01T00:00:00.000Z');

function at(seconds: number): Date {
  return new Date(t0.getTime() + seconds * 1000);
}

const lora: FineTunePlan = {
  base_model: 'stable-diffusion-v1-5',
  tuning_type: 'lora',
  subject_description: "the user's dog Fluffy, ünïcode ✓ 🐕",
  style_description: null,
  dataset: { min_images: 10, recommended_images: 20, resolution: 512, needs_captions: false },
  hyperparameters: { learning_rate: 0.0001, train_steps: 1000, batch_size: 1, lora_rank: 16, lora_alpha: 8 },
};

function plan(id: string, fields: Partial<PlanRecord> = {}): PlanRecord {
  return {
    id,
    requestId: `req-${id}`,
    userId: 'alice',
    receivedAt: t0,
    userPrompt: 'Teach the model my dog Fluffy in watercolour',
    llmPrompt: 'SYSTEM: …\nUSER: Teach the model my dog Fluffy',
    llmRawResponse: JSON.stringify(lora),
    plan: lora,
    status: 'SUCCESS',
    processingMs: 42,
    planner: 'openai-compatible:qwen',
    attempts: 1,
    problems: [],
    warnings: ['resolution: defaulted to 512'],
    ...fields,
  };
}

function image(datasetId: string, name: string, imageId: string, fields: Partial<DatasetImageRecord> = {}) {
  return {
    datasetId,
    name,
    imageId,
    key: `datasets/${datasetId}/raw/${name}`,
    bytes: 1234,
    sha256: 'a'.repeat(64),
    contentType: 'image/png',
    createdAt: t0,
    ...fields,
  } satisfies DatasetImageRecord;
}

function curation(
  id: string,
  fields: Partial<Omit<CurationRecord, 'revision'>> = {},
): Omit<CurationRecord, 'revision'> {
  return {
    id,
    projectId: 'fluffy',
    source: { datasetId: 'dogs' },
    status: 'PENDING',
    progress: { total: 0, embedded: 0, failed: 0, duplicates: 0 },
    imagesForFeedback: [],
    feedback: {},
    curatedDatasetId: null,
    curatedDatasetUri: null,
    errors: [],
    failure: null,
    embedder: 'pixels-v1',
    createdAt: t0,
    updatedAt: t0,
    ...fields,
  };
}

function run(id: string, fields: Partial<IntelligenceRunRecord> = {}): IntelligenceRunRecord {
  return {
    id,
    prompt: 'Teach the model my dog',
    userId: 'alice',
    source: { rawDataUri: 's3://savassan/uploads/dogs/' },
    execution: { project: 'savassan', domain: 'development', name: id },
    createdAt: t0,
    ...fields,
  };
}

function code(expected: string): (err: unknown) => boolean {
  return (err) => isPlatformError(err) && err.code === expected;
}

/**
 * The behaviour every `IntelligenceStore` adapter must have. Each test opens its own fixture.
 *
 * @example
 * intelligenceStoreContract('SQLite :memory:', async () => {
 *   const metadata = await openSqliteMetadataStore(':memory:');
 *   return { intelligence: new SqlIntelligenceStore(metadata.shared()), close: () => metadata.close(),
 *     cleanup: async () => {} };
 * });
 */
export function intelligenceStoreContract(name: string, open: () => Promise<IntelligenceStoreFixture>): void {
  async function withStore(
    body: (stores: IntelligenceStores, reopen: (() => Promise<IntelligenceStores>) | undefined) => Promise<void>,
  ): Promise<void> {
    const fixture = await open();
    await withReopenable<IntelligenceStores>(
      fixture,
      fixture,
      (stores) => stores.close(),
      (reopen) => body(fixture, reopen),
    );
  }

  describe(`IntelligenceStore contract: ${name}`, () => {
    it('logs a plan with every field kept; reads it by id and by request id', async () => {
      await withStore(async ({ intelligence }, reopen) => {
        assert.equal(await intelligence.getPlan('plan-missing'), null);
        assert.equal(await intelligence.getPlanByRequest('req-missing'), null);
        const record = plan('plan-one');
        const put = await intelligence.putPlan(record);
        assert.equal(put.created, true);
        assert.deepEqual(put.record, record);
        assert.deepEqual(await intelligence.getPlan('plan-one'), record);
        assert.deepEqual(await intelligence.getPlanByRequest('req-plan-one'), record);

        const failed = plan('plan-two', {
          status: 'PARSING_ERROR',
          plan: null,
          llmPrompt: null,
          llmRawResponse: '{"tuning_type": "lora"',
          attempts: 3,
          problems: [{ path: '$', message: 'unexpected end of JSON' }],
          warnings: [],
        });
        assert.deepEqual((await intelligence.putPlan(failed)).record, failed);
        assert.deepEqual(await intelligence.getPlan('plan-two'), failed);

        // The caller's object changed afterwards changes nothing stored.
        record.warnings.push('later');
        assert.deepEqual((await intelligence.getPlan('plan-one'))?.warnings, ['resolution: defaulted to 512']);

        if (reopen !== undefined) {
          const again = await reopen();
          assert.deepEqual(await again.intelligence.getPlan('plan-two'), failed);
          assert.deepEqual(await again.intelligence.getPlanByRequest('req-plan-one'), put.record);
        }
      });
    });

    it('normalises what it keeps: whole milliseconds, NUL and lone surrogates in free text replaced', async () => {
      await withStore(async ({ intelligence }) => {
        const { record } = await intelligence.putPlan(
          plan('plan-odd', {
            processingMs: 12.6,
            userPrompt: 'a\u0000b\uD800c 🐕',
            llmRawResponse: 'x\uDC00',
          }),
        );
        assert.equal(record.processingMs, 13);
        assert.equal(record.userPrompt, 'a\uFFFDb\uFFFDc 🐕');
        assert.equal(record.llmRawResponse, 'x\uFFFD');
        assert.deepEqual(await intelligence.getPlan('plan-odd'), record);
      });
    });

    it('refuses plans it cannot keep alike: BAD_REQUEST, nothing written', async () => {
      await withStore(async ({ intelligence }) => {
        await assert.rejects(
          intelligence.putPlan(plan('plan-x', { status: 'LLM_ERROR' })),
          code('BAD_REQUEST'),
          'a plan with a failed status',
        );
        await assert.rejects(intelligence.putPlan(plan('plan-x', { status: 'DONE' as never })), code('BAD_REQUEST'));
        await assert.rejects(intelligence.putPlan(plan('plan-x', { userId: 'u'.repeat(256) })), code('BAD_REQUEST'));
        await assert.rejects(intelligence.putPlan(plan('plan-x', { requestId: '' })), code('BAD_REQUEST'));
        // Keys every engine keeps alike: MySQL would take `req ` for `req`.
        await intelligence.putPlan(plan('plan-y', { requestId: 'req' }));
        await assert.rejects(intelligence.putPlan(plan('plan-x', { requestId: 'req ' })), code('BAD_REQUEST'));
        await assert.rejects(intelligence.putPlan(plan('plan-x', { requestId: 'r\u0000' })), code('BAD_REQUEST'));
        assert.equal(await intelligence.getPlanByRequest('req '), null);
        await assert.rejects(intelligence.putPlan(plan('plan-x', { processingMs: -1 })), code('BAD_REQUEST'));
        await assert.rejects(
          intelligence.putPlan(plan('plan-x', { receivedAt: new Date(Number.NaN) })),
          code('BAD_REQUEST'),
        );
        assert.equal(await intelligence.getPlan('plan-x'), null);
        // Keys no row can have find nothing.
        assert.equal(await intelligence.getPlan('p'.repeat(300)), null);
        assert.equal(await intelligence.getPlanByRequest('r'.repeat(300)), null);
        assert.deepEqual(await intelligence.listPlans({ userId: 'u'.repeat(300), limit: 10 }), []);
      });
    });

    it('putPlan is idempotent by request id: a replay gets the stored record, nothing rewritten', async () => {
      await withStore(async ({ intelligence }) => {
        const first = await intelligence.putPlan(plan('plan-a', { requestId: 'req-1' }));
        const replay = await intelligence.putPlan(
          plan('plan-b', { requestId: 'req-1', userPrompt: 'something else', status: 'LLM_ERROR', plan: null }),
        );
        assert.deepEqual(replay, { record: first.record, created: false });
        assert.equal(await intelligence.getPlan('plan-b'), null);
        // Another request under a taken id: CONFLICT.
        await assert.rejects(intelligence.putPlan(plan('plan-a', { requestId: 'req-2' })), code('CONFLICT'));
        assert.equal(await intelligence.getPlanByRequest('req-2'), null);
      });
    });

    it('concurrent puts with one request id: one is created, every caller gets that record', async () => {
      await withStore(async ({ intelligence }) => {
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => intelligence.putPlan(plan(`plan-c${i}`, { requestId: 'req-same' }))),
        );
        assert.equal(results.filter((r) => r.created).length, 1);
        const winner = results.find((r) => r.created)!.record;
        for (const result of results) assert.deepEqual(result.record, winner);
        assert.deepEqual(await intelligence.getPlanByRequest('req-same'), winner);
        assert.equal((await intelligence.listPlans({ limit: 100 })).length, 1);
      });
    });

    it('lists plans newest first, by user, in pages bounded by receivedAt; limit 1-1000', async () => {
      await withStore(async ({ intelligence }) => {
        assert.deepEqual(await intelligence.listPlans({ limit: 10 }), []);
        for (let i = 0; i < 7; i++) {
          await intelligence.putPlan(plan(`plan-${i}`, { receivedAt: at(i), userId: i % 2 === 0 ? 'alice' : 'bob' }));
        }
        const ids = (records: PlanRecord[]) => records.map((r) => r.id);
        assert.deepEqual(
          ids(await intelligence.listPlans({ limit: 10 })),
          [6, 5, 4, 3, 2, 1, 0].map((i) => `plan-${i}`),
        );
        assert.deepEqual(ids(await intelligence.listPlans({ userId: 'bob', limit: 10 })), [
          'plan-5',
          'plan-3',
          'plan-1',
        ]);
        assert.deepEqual(await intelligence.listPlans({ userId: 'carol', limit: 10 }), []);

        // Paging: each page's last receivedAt bounds the next.
        const pages: string[][] = [];
        let before: Date | undefined;
        for (;;) {
          const page = await intelligence.listPlans({ limit: 3, before });
          if (page.length === 0) break;
          pages.push(ids(page));
          before = page.at(-1)!.receivedAt;
        }
        assert.deepEqual(pages, [['plan-6', 'plan-5', 'plan-4'], ['plan-3', 'plan-2', 'plan-1'], ['plan-0']]);
        assert.deepEqual(ids(await intelligence.listPlans({ userId: 'alice', limit: 2, before: at(4) })), [
          'plan-2',
          'plan-0',
        ]);

        for (const limit of [0, 1001, 1.5, Number.NaN]) {
          await assert.rejects(intelligence.listPlans({ limit }), code('BAD_REQUEST'), `limit ${limit}`);
        }
        assert.equal((await intelligence.listPlans({ limit: 1000 })).length, 7);
        // Same receivedAt: ordered by id, newest first.
        await intelligence.putPlan(plan('plan-z', { receivedAt: at(6) }));
        assert.deepEqual(ids(await intelligence.listPlans({ limit: 2 })), ['plan-z', 'plan-6']);
      });
    });

    it('dataset images: insert, replace by name (the replaced record returned), listed by name', async () => {
      await withStore(async ({ intelligence }, reopen) => {
        assert.deepEqual(await intelligence.listDatasetImages('dogs'), []);
        assert.equal(await intelligence.putDatasetImage(image('dogs', 'b.png', 'img-b1')), null);
        assert.equal(await intelligence.putDatasetImage(image('dogs', 'a.jpg', 'img-a1')), null);
        assert.equal(await intelligence.putDatasetImage(image('dogs', 'B.png', 'img-B1')), null);
        assert.equal(await intelligence.putDatasetImage(image('cats', 'a.jpg', 'img-c1')), null);

        const replacement = image('dogs', 'b.png', 'img-b2', { bytes: 99, sha256: 'b'.repeat(64), createdAt: at(5) });
        assert.deepEqual(await intelligence.putDatasetImage(replacement), image('dogs', 'b.png', 'img-b1'));
        assert.deepEqual(
          (await intelligence.listDatasetImages('dogs')).map((i) => [i.name, i.imageId]),
          [
            ['B.png', 'img-B1'],
            ['a.jpg', 'img-a1'],
            ['b.png', 'img-b2'],
          ],
        );
        assert.deepEqual(await intelligence.getDatasetImage('dogs', 'img-b2'), replacement);
        assert.equal(await intelligence.getDatasetImage('dogs', 'img-b1'), null, 'the replaced image is gone');
        assert.equal(await intelligence.getDatasetImage('cats', 'img-a1'), null, 'images are per dataset');
        assert.deepEqual(
          (await intelligence.listDatasetImages('cats')).map((i) => i.imageId),
          ['img-c1'],
        );
        // One image id under two names of a dataset: CONFLICT.
        await assert.rejects(intelligence.putDatasetImage(image('dogs', 'c.png', 'img-a1')), code('CONFLICT'));
        await assert.rejects(
          intelligence.putDatasetImage(image('dogs', 'c.png', 'img-c', { bytes: -1 })),
          code('BAD_REQUEST'),
        );
        await assert.rejects(
          intelligence.putDatasetImage(image('dogs', 'n'.repeat(129), 'img-c')),
          code('BAD_REQUEST'),
        );
        assert.equal((await intelligence.listDatasetImages('dogs')).length, 3);

        if (reopen !== undefined) {
          const again = await reopen();
          assert.deepEqual(await again.intelligence.getDatasetImage('dogs', 'img-b2'), replacement);
        }
      });
    });

    it('concurrent first uploads of one name: one record remains, the other put replaced it', async () => {
      await withStore(async ({ intelligence }) => {
        const results = await Promise.all(
          Array.from({ length: 4 }, (_, i) => intelligence.putDatasetImage(image('dogs', 'same.png', `img-s${i}`))),
        );
        assert.equal(results.filter((r) => r === null).length, 1);
        const listed = await intelligence.listDatasetImages('dogs');
        assert.equal(listed.length, 1);
      });
    });

    it('curations: created once, written by compare-and-set on the revision; a stale write is lost', async () => {
      await withStore(async ({ intelligence }, reopen) => {
        assert.equal(await intelligence.getCuration('cur-1'), null);
        const created = await intelligence.putCuration(curation('cur-1'), null);
        assert.deepEqual(created, { ...curation('cur-1'), revision: 1 });
        assert.equal(await intelligence.putCuration(curation('cur-1', { status: 'FAILED' }), null), null);
        assert.deepEqual(await intelligence.getCuration('cur-1'), created);

        const embedding = curation('cur-1', {
          status: 'AWAITING_FEEDBACK',
          progress: { total: 10, embedded: 8, failed: 1, duplicates: 1 },
          imagesForFeedback: [
            { imageId: 'img-1', uri: 's3://savassan/datasets/dogs/raw/1.png', reason: 'cluster', cluster: 0 },
            { imageId: 'img-2', uri: 's3://savassan/datasets/dogs/raw/2.png', reason: 'outlier', cluster: 1 },
          ],
          feedback: { 'img-1': true, 'img-2': false },
          errors: [{ file: 'broken.png', message: 'Input buffer contains unsupported image format' }],
          updatedAt: at(10),
        });
        const second = await intelligence.putCuration(embedding, 1);
        assert.deepEqual(second, { ...embedding, revision: 2 });
        // A writer that read revision 1 loses.
        assert.equal(await intelligence.putCuration(curation('cur-1', { status: 'FAILED' }), 1), null);
        assert.equal(await intelligence.putCuration(curation('cur-1', { status: 'FAILED' }), 7), null);
        assert.equal(await intelligence.putCuration(curation('cur-2'), 1), null, 'no such job');
        assert.deepEqual(await intelligence.getCuration('cur-1'), second);

        const done = curation('cur-1', {
          ...embedding,
          status: 'COMPLETED',
          curatedDatasetId: 'ds-1',
          curatedDatasetUri: 's3://savassan/curated/ds-1/',
          createdAt: at(99),
          updatedAt: at(20),
        });
        const third = await intelligence.putCuration(done, 2);
        // The creation time stays the first write's.
        assert.deepEqual(third, { ...done, createdAt: t0, revision: 3 });

        const withFailure = await intelligence.putCuration(
          curation('cur-3', {
            source: { rawDataUri: 's3://savassan/raw/' },
            status: 'FAILED',
            failure: 'nothing could be embedded',
          }),
          null,
        );
        assert.deepEqual(await intelligence.getCuration('cur-3'), withFailure);
        await assert.rejects(
          intelligence.putCuration(curation('cur-4', { status: 'DONE' as never }), null),
          code('BAD_REQUEST'),
        );
        await assert.rejects(intelligence.putCuration(curation('cur-4'), 0), code('BAD_REQUEST'));
        await assert.rejects(
          intelligence.putCuration(
            curation('cur-4', { progress: { total: -1, embedded: 0, failed: 0, duplicates: 0 } }),
            null,
          ),
          code('BAD_REQUEST'),
        );
        assert.equal(await intelligence.getCuration('cur-4'), null);

        if (reopen !== undefined) {
          const again = await reopen();
          assert.deepEqual(await again.intelligence.getCuration('cur-1'), third);
        }
      });
    });

    it('concurrent writes from one revision: exactly one wins', async () => {
      await withStore(async ({ intelligence }) => {
        await intelligence.putCuration(curation('cur-1'), null);
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            intelligence.putCuration(
              curation('cur-1', { progress: { total: 6, embedded: i, failed: 0, duplicates: 0 } }),
              1,
            ),
          ),
        );
        const winners = results.filter((r) => r !== null);
        assert.equal(winners.length, 1);
        assert.deepEqual(await intelligence.getCuration('cur-1'), winners[0]);
        assert.equal(winners[0]!.revision, 2);

        const creates = await Promise.all(
          Array.from({ length: 4 }, () => intelligence.putCuration(curation('cur-new'), null)),
        );
        assert.equal(creates.filter((r) => r !== null).length, 1);
      });
    });

    it('lists the active curations (not COMPLETED or FAILED), oldest first', async () => {
      await withStore(async ({ intelligence }) => {
        assert.deepEqual(await intelligence.listActiveCurations(), []);
        await intelligence.putCuration(curation('cur-e', { status: 'EMBEDDING', createdAt: at(3) }), null);
        await intelligence.putCuration(curation('cur-p', { status: 'PENDING', createdAt: at(5) }), null);
        await intelligence.putCuration(curation('cur-a', { status: 'AWAITING_FEEDBACK', createdAt: at(1) }), null);
        await intelligence.putCuration(curation('cur-c', { status: 'COMPLETED', createdAt: at(0) }), null);
        await intelligence.putCuration(curation('cur-f', { status: 'FAILED', createdAt: at(2) }), null);
        assert.deepEqual(
          (await intelligence.listActiveCurations()).map((c) => c.id),
          ['cur-a', 'cur-e', 'cur-p'],
        );
        // Ended by a later write: no longer listed.
        await intelligence.putCuration(
          curation('cur-e', { status: 'FAILED', failure: 'stopped', createdAt: at(3) }),
          1,
        );
        assert.deepEqual(
          (await intelligence.listActiveCurations()).map((c) => [c.id, c.revision]),
          [
            ['cur-a', 1],
            ['cur-p', 1],
          ],
        );
      });
    });

    it('runs: inserted once (CONFLICT again), read, listed newest first in pages', async () => {
      await withStore(async ({ intelligence }, reopen) => {
        assert.equal(await intelligence.getRun('run-1'), null);
        assert.deepEqual(await intelligence.listRuns({ limit: 10 }), []);
        for (let i = 0; i < 5; i++) {
          await intelligence.putRun(
            run(`run-${i}`, {
              createdAt: at(i),
              source: i % 2 === 0 ? { datasetId: 'dogs' } : { rawDataUri: 's3://savassan/raw/' },
            }),
          );
        }
        assert.deepEqual(
          await intelligence.getRun('run-1'),
          run('run-1', { createdAt: at(1), source: { rawDataUri: 's3://savassan/raw/' } }),
        );
        await assert.rejects(intelligence.putRun(run('run-1', { prompt: 'again' })), code('CONFLICT'));
        assert.equal((await intelligence.getRun('run-1'))?.prompt, 'Teach the model my dog');
        const ids = (records: IntelligenceRunRecord[]) => records.map((r) => r.id);
        assert.deepEqual(ids(await intelligence.listRuns({ limit: 3 })), ['run-4', 'run-3', 'run-2']);
        assert.deepEqual(ids(await intelligence.listRuns({ limit: 3, before: at(2) })), ['run-1', 'run-0']);
        await assert.rejects(intelligence.listRuns({ limit: 0 }), code('BAD_REQUEST'));
        await assert.rejects(
          intelligence.putRun(run('run-x', { execution: { project: '', domain: 'd', name: 'n' } })),
          code('BAD_REQUEST'),
        );
        await assert.rejects(intelligence.putRun(run('run-x', { source: {} as never })), code('BAD_REQUEST'));
        assert.equal(await intelligence.getRun('r'.repeat(300)), null);

        const racing = await Promise.allSettled([intelligence.putRun(run('run-r')), intelligence.putRun(run('run-r'))]);
        assert.deepEqual(racing.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
        const lost = racing.find((r) => r.status === 'rejected');
        assert.ok(lost !== undefined && code('CONFLICT')(lost.reason));

        if (reopen !== undefined) {
          const again = await reopen();
          assert.equal((await again.intelligence.listRuns({ limit: 100 })).length, 6);
        }
      });
    });
  });
}
