// The `fine-tune` workflow as embedded mode composes it, without a server: the real engine over a SQLite workflow
// store and a file blob store, the built-in tasks in-process through the node sink, the train node running the real
// trainer example's module, the run service reading runs back. The plan service is the real one (rule-based by
// default) on the memory intelligence store; the curation service is a small one that follows the curator's
// contract (statuses, revisions, `waitForChange`, the manifest), playing the user's images as vectors.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { createPixelEmbedder } from '../../src/adapters/images/pixel-embedder.js';
import { MemoryVectorStore } from '../../src/adapters/memory/memory-vector-store.js';
import { MemoryIntelligenceStore } from '../../src/adapters/memory/memory-intelligence-store.js';
import { SqlWorkflowStore } from '../../src/adapters/sql/sql-workflow-store.js';
import { openSqliteMetadataStore } from '../../src/adapters/sqlite/sqlite-metadata-store.js';
import type { CurationManifest } from '../../src/core/curation.js';
import { PlatformError } from '../../src/core/errors.js';
import type { CurationRecord, DatasetImageRecord, IntelligenceStore } from '../../src/core/ports/intelligence-store.js';
import type { StoredVector, VectorStore } from '../../src/core/ports/vector-store.js';
import { builtinTaskNames } from '../../src/intelligence/fine-tune-tasks.js';
import { newId } from '../../src/intelligence/ids.js';
import { createCurationService } from '../../src/intelligence/curate/curation-jobs.js';
import { createPlanService } from '../../src/intelligence/plan/plan-service.js';
import { createFineTunePipeline, storeNodeOutputs } from '../../src/intelligence/runs.js';
import type {
  CurationService,
  PlanService,
  RunService,
  RunView,
  StartCurationRequest,
  Verdict,
} from '../../src/intelligence/services.js';
import { BuiltinTaskRunner } from '../../src/intelligence/tasks.js';
import { BuiltinExecutionBackend } from '../../src/workflows/builtin-backend.js';
import { WorkflowEngine } from '../../src/workflows/engine.js';
import { StoreNodeSink } from '../../src/workflows/node-sink.js';
import { WorkflowDeployer } from '../../src/workflows/workflow-deployer.js';
import { fineTuneSpec } from '../../src/intelligence/fine-tune-workflow.js';

const trainer = createRequire(import.meta.url)('../../examples/fine-tune-trainer/index.js') as {
  handler(event: unknown): Promise<unknown>;
};

/** Vectors in memory, exact. */
export class TestVectors implements VectorStore {
  readonly dimensions = 8;
  readonly collections = new Map<string, StoredVector[]>();
  upsert(collection: string, vectors: readonly StoredVector[]) {
    this.collections.set(collection, [...(this.collections.get(collection) ?? []), ...vectors]);
    return Promise.resolve();
  }
  search(): never {
    throw new Error('not used here');
  }
  list(collection: string) {
    return Promise.resolve(this.collections.get(collection) ?? []);
  }
  count(collection: string) {
    return Promise.resolve(this.collections.get(collection)?.length ?? 0);
  }
  deleteCollection(collection: string) {
    this.collections.delete(collection);
    return Promise.resolve();
  }
  close() {
    return Promise.resolve();
  }
}

/**
 * A curation service as the curator's contract describes it, over vectors made here: dataset `dogs` has two clusters
 * of 12 images (`a…` near one direction, `b…` near another); `slow` stays EMBEDDING; any other fails (nothing could be embedded). Feedback
 * labels each image with its cluster's verdict (the images given one are `accepted`/`rejected`, the rest of their
 * cluster `neighbour-…`).
 */
export class TestCurations implements CurationService {
  readonly embedder = 'test-v1';
  readonly bucket = 'savassan';
  readonly #jobs = new Map<string, CurationRecord>();
  /** Jobs started, in order. */
  readonly started: string[] = [];
  readonly #changes = new EventEmitter();
  constructor(
    private readonly vectors: TestVectors,
    private readonly blobs: FsBlobStore,
  ) {
    this.#changes.setMaxListeners(100);
  }
  addDatasetImage(): never {
    throw new Error('not used here');
  }
  /** `dogs`, `slow` and `broken` hold images (as far as a run's start checks); any other dataset is empty. */
  listDatasetImages(datasetId: string): Promise<DatasetImageRecord[]> {
    if (!['dogs', 'slow', 'broken'].includes(datasetId)) return Promise.resolve([]);
    return Promise.resolve(
      [0, 1, 2].map((i) => ({
        datasetId,
        imageId: `img-${datasetId}${i}`,
        name: `${i}.png`,
        key: `datasets/${datasetId}/raw/${i}.png`,
        bytes: 1,
        sha256: '0'.repeat(64),
        contentType: 'image/png',
        createdAt: new Date(0),
      })),
    );
  }
  openImage(): never {
    throw new Error('not used here');
  }
  start(request: StartCurationRequest): Promise<CurationRecord> {
    const now = new Date();
    const record: CurationRecord = {
      id: newId('cur'),
      projectId: request.projectId,
      source: request.source,
      status: 'PENDING',
      progress: { total: 0, embedded: 0, failed: 0, duplicates: 0 },
      imagesForFeedback: [],
      feedback: {},
      curatedDatasetId: null,
      curatedDatasetUri: null,
      errors: [],
      failure: null,
      embedder: this.embedder,
      createdAt: now,
      updatedAt: now,
      revision: 1,
    };
    this.#jobs.set(record.id, record);
    this.started.push(record.id);
    setImmediate(() => void this.#embed(record.id, 'datasetId' in request.source ? request.source.datasetId : ''));
    return Promise.resolve(record);
  }
  async #embed(id: string, datasetId: string): Promise<void> {
    this.#write(id, { status: 'EMBEDDING' });
    // `slow`: embeds for ever.
    if (datasetId === 'slow') return;
    if (datasetId !== 'dogs') {
      this.#write(id, { status: 'FAILED', failure: 'nothing could be embedded: 0 of 3 files are images' });
      return;
    }
    const vectors: StoredVector[] = [];
    for (const cluster of ['a', 'b']) {
      for (let i = 0; i < 12; i += 1) {
        const v = Array.from(
          { length: 8 },
          (_, d) => (d % 2 === (cluster === 'a' ? 0 : 1) ? 1 : 0) + ((i * 7 + d * 3) % 5) * 0.08,
        );
        const norm = Math.hypot(...v);
        const imageId = `img-${cluster}${String(i).padStart(2, '0')}`;
        vectors.push({
          id: imageId,
          uri: `s3://savassan/datasets/dogs/raw/${imageId}.png`,
          vector: Float32Array.from(v, (x) => x / norm),
        });
      }
    }
    await this.vectors.upsert(id, vectors);
    this.#write(id, {
      status: 'AWAITING_FEEDBACK',
      progress: { total: 24, embedded: 24, failed: 0, duplicates: 0 },
      imagesForFeedback: ['img-a00', 'img-b00'].map((imageId, cluster) => ({
        imageId,
        uri: `s3://savassan/datasets/dogs/raw/${imageId}.png`,
        reason: 'cluster' as const,
        cluster,
      })),
    });
  }
  get(id: string): Promise<CurationRecord | null> {
    return Promise.resolve(this.#jobs.get(id) ?? null);
  }
  async submitFeedback(id: string, feedback: readonly Verdict[], complete: boolean): Promise<CurationRecord> {
    const job = this.#jobs.get(id);
    if (job?.status !== 'AWAITING_FEEDBACK') throw new PlatformError('CONFLICT', 'not awaiting feedback');
    const verdicts = Object.fromEntries(feedback.map((v) => [v.imageId, v.accepted]));
    if (!complete) return this.#write(id, { feedback: { ...job.feedback, ...verdicts } });
    const datasetId = newId('ds');
    const manifest: CurationManifest = {
      datasetId,
      curationId: id,
      projectId: job.projectId,
      createdAt: new Date().toISOString(),
      embedder: this.embedder,
      dimensions: 8,
      images: [],
      excluded: [],
    };
    for (const vector of await this.vectors.list(id)) {
      const cluster = vector.id.startsWith('img-a') ? 0 : 1;
      const given = verdicts[vector.id];
      const verdict = given ?? verdicts[cluster === 0 ? 'img-a00' : 'img-b00'];
      const uri = `s3://savassan/curated/${datasetId}/images/${vector.id}.png`;
      if (verdict === true) {
        manifest.images.push({
          imageId: vector.id,
          uri,
          source: vector.uri,
          label: given === undefined ? 'neighbour-accepted' : 'accepted',
          cluster,
        });
      } else if (verdict === false) {
        manifest.excluded.push({
          imageId: vector.id,
          source: vector.uri,
          reason: given === undefined ? 'neighbour-rejected' : 'rejected',
        });
      } else {
        manifest.images.push({ imageId: vector.id, uri, source: vector.uri, label: 'kept', cluster });
      }
    }
    await this.blobs.put(`curated/${datasetId}/manifest.json`, JSON.stringify(manifest));
    return this.#write(id, {
      status: 'COMPLETED',
      feedback: { ...job.feedback, ...verdicts },
      curatedDatasetId: datasetId,
      curatedDatasetUri: `s3://savassan/curated/${datasetId}/`,
    });
  }
  waitForChange(id: string, revision: number, signal: AbortSignal): Promise<CurationRecord | null> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const job = this.#jobs.get(id);
        if (job !== undefined && job.revision > revision) {
          done(job);
          return true;
        }
        return false;
      };
      const done = (value: CurationRecord | null): void => {
        this.#changes.off(id, check);
        signal.removeEventListener('abort', aborted);
        resolve(value);
      };
      const aborted = (): void => done(null);
      if (signal.aborted) return resolve(null);
      if (check()) return;
      this.#changes.on(id, check);
      signal.addEventListener('abort', aborted);
    });
  }
  #write(id: string, change: Partial<CurationRecord>): CurationRecord {
    const job = this.#jobs.get(id)!;
    const next = { ...job, ...change, updatedAt: new Date(), revision: job.revision + 1 };
    this.#jobs.set(id, next);
    this.#changes.emit(id);
    return next;
  }
}

/**
 * Engine, tasks, sink, deployer and run service as embedded mode composes them; `stop` when done. `curator: 'real'`:
 * the real curator (`CurationJobs` with the pixel embedder and the memory vector store) instead of `TestCurations`.
 */
export async function fineTuneRig(
  options: {
    plans?: (store: IntelligenceStore) => PlanService;
    maxTrainingSetBytes?: number;
    curator?: 'test' | 'real';
  } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'savassan-fine-tune-'));
  const metadata = await openSqliteMetadataStore(':memory:');
  const store = new SqlWorkflowStore(metadata.shared());
  const blobs = new FsBlobStore(join(dir, 'blobs'));
  const intelligence = new MemoryIntelligenceStore();
  let vectors: VectorStore;
  let curations: CurationService & { close?: () => Promise<void> };
  if (options.curator === 'real') {
    const embedder = createPixelEmbedder();
    vectors = new MemoryVectorStore(embedder.dimensions);
    curations = createCurationService({ store: intelligence, blobs, bucket: 'savassan', embedder, vectors });
  } else {
    const testVectors = new TestVectors();
    vectors = testVectors;
    curations = new TestCurations(testVectors, blobs);
  }
  const plans = options.plans?.(intelligence) ?? createPlanService({ store: intelligence, llm: null });
  const trained: string[] = [];
  let sink: StoreNodeSink | null = null;
  const tasks = new BuiltinTaskRunner({ names: builtinTaskNames, sink: () => sink! });
  const engine = new WorkflowEngine({
    store,
    blobStore: blobs,
    ...tasks.wrap({
      pinFunction: (name) => Promise.resolve(name === 'fine-tune-trainer' ? { version: 3, timeoutSeconds: 30 } : null),
      // The dispatcher's part for functions: the trainer's module runs here, as its sandbox would run it.
      submit: (name, eventJson, submitted) => {
        assert.equal(name, 'fine-tune-trainer');
        assert.equal(submitted.qualifier, 'live');
        const ref = submitted.workflow!;
        void (async () => {
          if (!(await sink!.claim(ref, 30))) return;
          trained.push(eventJson);
          const result = await trainer.handler(JSON.parse(eventJson));
          await sink!.report(ref, {
            status: 'succeeded',
            invocationId: `inv-${ref.name}`,
            functionVersion: 3,
            outputJson: Buffer.from(JSON.stringify(result)),
          });
        })();
        return Promise.resolve();
      },
    }),
    isLeader: () => true,
    pollMs: 20,
    bootId: 'me',
    preclaim: true,
  });
  sink = new StoreNodeSink({
    store,
    blobStore: blobs,
    processId: 'me',
    preclaimed: true,
    peek: (key, nodeKey) => engine.peek(key, nodeKey),
    onChange: (row) => engine.nodeChanged(row),
  });
  const backend = new BuiltinExecutionBackend({ store, blobStore: blobs, wake: (key) => engine.wake(key) });
  const deployer = new WorkflowDeployer({
    store,
    backend,
    functionExists: (name) => Promise.resolve(name === 'fine-tune-trainer'),
    builtinTasks: builtinTaskNames,
  });
  await deployer.deploy('fine-tune', fineTuneSpec);
  const runs = createFineTunePipeline({
    store: intelligence,
    plans,
    curations,
    vectors,
    blobStore: blobs,
    bucket: 'savassan',
    backend,
    workflowStore: store,
    functionExists: (name) => Promise.resolve(name === 'fine-tune-trainer'),
    tasks,
    maxTrainingSetBytes: options.maxTrainingSetBytes,
  });
  engine.start();
  /** Stops the engine and the tasks and removes what the rig wrote. */
  const stop = async (): Promise<void> => {
    await tasks.stop();
    await engine.stop();
    await curations.close?.();
    await metadata.close();
    await rm(dir, { recursive: true, force: true });
  };
  const nodeOutput = storeNodeOutputs(store, blobs);
  /** The plan node's output in a run (null until it succeeded). */
  const planOutput = (runId: string): Promise<unknown> =>
    nodeOutput({ project: 'savassan', domain: 'development', name: runId }, 'plan');
  return { runs, plans, curations, blobs, deployer, backend, trained, intelligence, planOutput, stop };
}

/** Reads the run until `until` holds (every status seen on the way is kept). */
export async function followRun(runs: RunService, id: string, until: (view: RunView) => boolean, seen: string[] = []) {
  for (;;) {
    const view = await runs.get(id);
    assert.ok(view !== null);
    if (seen.at(-1) !== view.status) seen.push(view.status);
    if (until(view)) return view;
    if (view.status === 'FAILED' || view.status === 'ABORTED')
      assert.fail(`run ended ${view.status}: ${JSON.stringify(view.error)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
