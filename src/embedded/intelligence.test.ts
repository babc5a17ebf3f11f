// The composition's lifecycle: parts opened in order, closed in reverse, and a part that fails to open closes the
// ones before it. The parts are small implementations of their ports that record what happens to them.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { MemoryIntelligenceStore } from '../adapters/memory/memory-intelligence-store.js';
import { PlatformError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { Embedder } from '../core/ports/embedder.js';
import type { Llm } from '../core/ports/llm.js';
import type { VectorStore } from '../core/ports/vector-store.js';
import type { PlanService, RunService } from '../intelligence/services.js';
import { createIntelligence, type CuratorRuntime, type IntelligenceFactories } from './intelligence.js';
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
    curations: ({ store }): CuratorRuntime => {
      events.push('open curator');
      return {
        embedder: 'test',
        bucket: 'savassan',
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
        stop: () => {
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
});
