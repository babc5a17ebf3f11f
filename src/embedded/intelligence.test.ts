// The composition's lifecycle: parts opened in order, closed in reverse, and a part that fails to open closes the
// ones before it. The parts are small implementations of their ports that record what happens to them.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { MemoryIntelligenceStore } from '../adapters/memory/memory-intelligence-store.js';
import { PlatformError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { Embedder } from '../core/ports/embedder.js';
import type { Llm } from '../core/ports/llm.js';
import type { VectorStore } from '../core/ports/vector-store.js';
import type { PlanService, RunService } from '../intelligence/services.js';
import { syntheticImages } from '../../test/helpers/synthetic-images.js';
import {
  createIntelligence,
  platformIntelligenceFactories,
  type CuratorRuntime,
  type IntelligenceFactories,
} from './intelligence.js';
import { compileIntelligenceOptions } from './intelligence-options.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

function unused(): Promise<never> {
  return Promise.reject(new PlatformError('INTERNAL', 'not part of this test'));
}

/** Factories whose parts log their lifecycle to `events`; `failAt` makes that part's factory throw. */
function factories(events: string[], failAt?: string): IntelligenceFactories {
  const closer = (name: string) => ({
    close: () => {
      events.push(`close ${name}`);
      return Promise.resolve();
    },
  });
  const open = <T>(name: string, part: T): Promise<T> => {
    if (name === failAt) return Promise.reject(new PlatformError('UNAVAILABLE', `${name} is unavailable`));
    events.push(`open ${name}`);
    return Promise.resolve(part);
  };
  return {
    llm: (options) =>
      options.llm === 'rule-based'
        ? Promise.resolve(null)
        : open<Llm>('llm', {
            kind: 'openai-compatible',
            model: 'm',
            constrained: true,
            complete: unused,
            ...closer('llm'),
          }),
    embedder: () => open<Embedder>('embedder', { id: 'test', dimensions: 2, embed: unused, ...closer('embedder') }),
    vectorStore: (_options, dimensions) =>
      open<VectorStore>('vectors', {
        dimensions,
        upsert: unused,
        search: unused,
        list: unused,
        count: unused,
        deleteCollection: unused,
        ...closer('vectors'),
      }),
    plans: ({ store }): PlanService => ({
      planner: 'rule-based',
      createPlan: unused,
      getPlan: (id) => store.getPlan(id),
      listPlans: (query) => store.listPlans(query),
    }),
    curations: ({ store, bucket }): CuratorRuntime => {
      events.push('open curator');
      return {
        embedder: 'test',
        bucket,
        addDatasetImage: unused,
        listDatasetImages: (datasetId) => store.listDatasetImages(datasetId),
        start: unused,
        get: (id) => store.getCuration(id),
        submitFeedback: unused,
        openImage: () => Promise.resolve(null),
        waitForChange: () => Promise.resolve(null),
        resume: () => {
          events.push('resume curator');
          return Promise.resolve();
        },
        close: () => {
          events.push('close curator');
          return Promise.resolve();
        },
      };
    },
    runs: (): RunService => {
      if (failAt === 'runs') throw new PlatformError('INTERNAL', 'runs failed');
      return { start: unused, get: () => Promise.resolve(null), list: () => Promise.resolve([]) };
    },
  };
}

async function blobStore(): Promise<FsBlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'sv-intelligence-'));
  dirs.push(dir);
  return new FsBlobStore(dir);
}

describe('createIntelligence', () => {
  it('opens the parts in order, resumes the curator on start, closes in reverse once', async () => {
    const events: string[] = [];
    const intelligence = await createIntelligence({
      options: compileIntelligenceOptions({ llm: 'openai', llmUrl: 'http://127.0.0.1:1/v1', llmModel: 'm' }),
      store: new MemoryIntelligenceStore(),
      blobStore: await blobStore(),
      bucket: 'savassan',
      logger: silentLogger,
      factories: factories(events),
    });
    assert.equal(intelligence.plans.planner, 'rule-based');
    assert.equal(await intelligence.runs.get('run-x'), null);
    await intelligence.start();
    await Promise.all([intelligence.close(), intelligence.close()]);
    assert.deepEqual(events, [
      'open llm',
      'open embedder',
      'open vectors',
      'open curator',
      'resume curator',
      'close curator',
      'close vectors',
      'close embedder',
      'close llm',
    ]);
  });

  it('the rule-based planner opens no model', async () => {
    const events: string[] = [];
    const intelligence = await createIntelligence({
      options: compileIntelligenceOptions({}),
      store: new MemoryIntelligenceStore(),
      blobStore: await blobStore(),
      bucket: 'savassan',
      logger: silentLogger,
      factories: factories(events),
    });
    await intelligence.close();
    assert.deepEqual(events, [
      'open embedder',
      'open vectors',
      'open curator',
      'close curator',
      'close vectors',
      'close embedder',
    ]);
  });

  it('a part that fails to open closes those opened before it, and the call fails with its error', async () => {
    for (const [failAt, closed] of [
      ['vectors', ['close embedder']],
      ['runs', ['close curator', 'close vectors', 'close embedder']],
    ] as const) {
      const events: string[] = [];
      await assert.rejects(
        createIntelligence({
          options: compileIntelligenceOptions({}),
          store: new MemoryIntelligenceStore(),
          blobStore: await blobStore(),
          bucket: 'savassan',
          logger: silentLogger,
          factories: factories(events, failAt),
        }),
        (err: unknown) => err instanceof PlatformError,
      );
      assert.deepEqual(
        events.filter((event) => event.startsWith('close')),
        [...closed],
        failAt,
      );
    }
  });

  it('the platform factories: the rule-based planner, the pixels embedder and PGlite under the data directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-intelligence-data-'));
    dirs.push(dataDir);
    const store = new MemoryIntelligenceStore();
    const intelligence = await createIntelligence({
      options: compileIntelligenceOptions({}),
      store,
      blobStore: new FsBlobStore(join(dataDir, 'blobs')),
      bucket: 'savassan',
      logger: silentLogger,
      factories: platformIntelligenceFactories({
        dataDir,
        runs: () => ({ start: unused, get: () => Promise.resolve(null), list: () => Promise.resolve([]) }),
      }),
    });
    try {
      await intelligence.start();
      assert.equal(intelligence.plans.planner, 'rule-based');
      const { record } = await intelligence.plans.createPlan({ prompt: 'A LoRA of my dog Fluffy in watercolour' });
      assert.equal(record.status, 'SUCCESS');
      assert.deepEqual(await store.getPlan(record.id), record);

      assert.equal(intelligence.curations.embedder, 'pixels-v1');
      for (const image of await syntheticImages({ clusters: 2, perCluster: 3, broken: false, outliers: 0 })) {
        await intelligence.curations.addDatasetImage(
          'shapes',
          image.name,
          Readable.from([image.bytes]),
          image.bytes.length,
        );
      }
      let job = await intelligence.curations.start({ projectId: 'p', source: { datasetId: 'shapes' } });
      while (job.status !== 'AWAITING_FEEDBACK' && job.status !== 'FAILED') {
        const next = await intelligence.curations.waitForChange(job.id, job.revision, AbortSignal.timeout(120_000));
        assert.ok(next !== null, 'the job stopped changing');
        job = next;
      }
      assert.equal(job.status, 'AWAITING_FEEDBACK', job.failure ?? '');
      assert.ok((await readdir(join(dataDir, 'vectors'))).length > 0, 'the vectors are under the data directory');
    } finally {
      await intelligence.close();
    }
  });
});
