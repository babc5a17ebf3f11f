// The `fine-tune` workflow (examples/workflows/fine-tune.json) on the real engine over a SQLite workflow store and
// a file blob store: its built-in tasks run in-process through the node sink, the train node runs the real trainer
// example's module, and runs are read back through the run service. The plan service is the real one (rule-based,
// or a scripted model for a failing plan); the curation service here is a small in-test one that follows the
// curator's contract (statuses, revisions, `waitForChange`, the manifest), playing the user's images as vectors.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { SqlWorkflowStore } from '../adapters/sql/sql-workflow-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import type { CurationManifest } from '../core/curation.js';
import { PlatformError, isPlatformError } from '../core/errors.js';
import type {
  CurationRecord,
  IntelligenceRunRecord,
  IntelligenceStore,
  PlanRecord,
} from '../core/ports/intelligence-store.js';
import type { StoredVector, VectorStore } from '../core/ports/vector-store.js';
import type { WorkflowStore } from '../core/ports/workflow-store.js';
import { BuiltinExecutionBackend } from '../workflows/builtin-backend.js';
import { WorkflowEngine } from '../workflows/engine.js';
import { StoreNodeSink } from '../workflows/node-sink.js';
import { WorkflowDeployer } from '../workflows/workflow-deployer.js';
import { ScriptedLlm } from '../../test/helpers/scripted-llm.js';
import { builtinTaskNames, fineTuneTasks, trainingSetOf } from './fine-tune-tasks.js';
import { newId } from './ids.js';
import { createPlanService } from './plan/plan-service.js';
import { FineTuneRuns, storeNodeOutputs } from './runs.js';
import type { CurationService, PlanService, RunView, StartCurationRequest, Verdict } from './services.js';
import { BuiltinTaskRunner } from './tasks.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const trainer = createRequire(import.meta.url)('../../examples/fine-tune-trainer/index.js') as {
  handler(event: unknown): Promise<unknown>;
};

/** Plans and runs in memory (the other records are the curation service's own here). */
class TestIntelligenceStore implements IntelligenceStore {
  readonly plans = new Map<string, PlanRecord>();
  readonly runs = new Map<string, IntelligenceRunRecord>();
  putPlan(record: PlanRecord) {
    const known = [...this.plans.values()].find((p) => p.requestId === record.requestId);
    if (known !== undefined) return Promise.resolve({ record: known, created: false });
    this.plans.set(record.id, record);
    return Promise.resolve({ record, created: true });
  }
  getPlan(id: string) {
    return Promise.resolve(this.plans.get(id) ?? null);
  }
  getPlanByRequest(requestId: string) {
    return Promise.resolve([...this.plans.values()].find((p) => p.requestId === requestId) ?? null);
  }
  listPlans() {
    return Promise.resolve([...this.plans.values()]);
  }
  putDatasetImage(): never {
    throw new Error('not used here');
  }
  listDatasetImages(): never {
    throw new Error('not used here');
  }
  getDatasetImage(): never {
    throw new Error('not used here');
  }
  putCuration(): never {
    throw new Error('not used here');
  }
  getCuration(): never {
    throw new Error('not used here');
  }
  listActiveCurations(): never {
    throw new Error('not used here');
  }
  putRun(record: IntelligenceRunRecord) {
    if (this.runs.has(record.id)) return Promise.reject(new PlatformError('CONFLICT', `run ${record.id} exists`));
    this.runs.set(record.id, record);
    return Promise.resolve();
  }
  getRun(id: string) {
    return Promise.resolve(this.runs.get(id) ?? null);
  }
  listRuns(query: { limit: number }) {
    return Promise.resolve(
      [...this.runs.values()].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime()).slice(0, query.limit),
    );
  }
}

/** Vectors in memory, exact. */
class TestVectors implements VectorStore {
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
 * of 12 images (`a…` near one direction, `b…` near another); `broken` fails (nothing could be embedded). Feedback
 * labels each image with its cluster's verdict (the images given one are `accepted`/`rejected`, the rest of their
 * cluster `neighbour-…`).
 */
class TestCurations implements CurationService {
  readonly embedder = 'test-v1';
  readonly #jobs = new Map<string, CurationRecord>();
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
  listDatasetImages(): never {
    throw new Error('not used here');
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
    setImmediate(() => void this.#embed(record.id, 'datasetId' in request.source ? request.source.datasetId : ''));
    return Promise.resolve(record);
  }
  async #embed(id: string, datasetId: string): Promise<void> {
    this.#write(id, { status: 'EMBEDDING' });
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

describe('the fine-tune workflow on the engine', () => {
  let dir: string;
  let closeMetadata: () => Promise<void>;
  let store: WorkflowStore;
  const stops: (() => Promise<void>)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'savassan-fine-tune-'));
    const metadata = await openSqliteMetadataStore(':memory:');
    closeMetadata = () => metadata.close();
    store = new SqlWorkflowStore(metadata.shared());
  });

  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  after(async () => {
    await closeMetadata();
    await rm(dir, { recursive: true, force: true });
  });

  /** Engine, tasks, sink, deployer and run service as embedded mode composes them. */
  async function rig(
    options: { plans?: (store: IntelligenceStore) => PlanService; maxTrainingSetBytes?: number } = {},
  ) {
    const blobs = new FsBlobStore(join(dir, `blobs-${newId('run')}`));
    const intelligence = new TestIntelligenceStore();
    const vectors = new TestVectors();
    const curations = new TestCurations(vectors, blobs);
    const plans = options.plans?.(intelligence) ?? createPlanService({ store: intelligence, llm: null });
    const trained: string[] = [];
    let sink: StoreNodeSink | null = null;
    const tasks = new BuiltinTaskRunner({ names: builtinTaskNames, sink: () => sink! });
    tasks.provide(
      fineTuneTasks({
        plans,
        curations,
        vectors,
        blobStore: blobs,
        bucket: 'savassan',
        maxTrainingSetBytes: options.maxTrainingSetBytes,
      }),
    );
    const engine = new WorkflowEngine({
      store,
      blobStore: blobs,
      ...tasks.wrap({
        pinFunction: (name) =>
          Promise.resolve(name === 'fine-tune-trainer' ? { version: 3, timeoutSeconds: 30 } : null),
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
    const spec = JSON.parse(
      await readFile(join(repoRoot, 'examples', 'workflows', 'fine-tune.json'), 'utf8'),
    ) as unknown;
    await deployer.deploy('fine-tune', spec);
    const runs = new FineTuneRuns({
      store: intelligence,
      backend,
      plans,
      curations,
      nodeOutput: storeNodeOutputs(store, blobs),
      functionExists: (name) => Promise.resolve(name === 'fine-tune-trainer'),
      bucket: 'savassan',
    });
    engine.start();
    stops.push(async () => {
      await tasks.stop();
      await engine.stop();
    });
    return { runs, curations, blobs, deployer, trained, intelligence };
  }

  /** Reads the run until `until` holds (every status seen on the way is kept). */
  async function follow(runs: FineTuneRuns, id: string, until: (view: RunView) => boolean, seen: string[] = []) {
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

  it('plans, curates, waits for the feedback, trains the probe and writes the report', async () => {
    const { runs, curations, blobs, trained } = await rig();
    const started = await runs.start({
      prompt: 'LoRA of my dog Fluffy in watercolor style',
      source: { datasetId: 'dogs' },
      userId: 'ada',
    });
    assert.equal(started.status, 'PLANNING');
    assert.deepEqual(started.execution, { project: 'savassan', domain: 'development', name: started.id });
    const seen: string[] = [];
    const waiting = await follow(runs, started.id, (v) => v.status === 'AWAITING_FEEDBACK', seen);
    assert.ok(waiting.planId !== null && waiting.plan !== null, 'the plan is shown');
    assert.equal(waiting.plan.tuning_type, 'lora');
    assert.ok(waiting.curationId !== null);
    const job = await curations.get(waiting.curationId);
    assert.equal(job?.projectId, started.id);
    await curations.submitFeedback(
      waiting.curationId,
      [
        { imageId: 'img-a00', accepted: true },
        { imageId: 'img-b00', accepted: false },
      ],
      true,
    );
    const done = await follow(runs, started.id, (v) => v.status === 'SUCCEEDED', seen);
    assert.deepEqual(
      seen.filter((s) => s !== 'CURATING' && s !== 'TRAINING' && s !== 'EVALUATING'),
      ['PLANNING', 'AWAITING_FEEDBACK', 'SUCCEEDED'].filter((s) => seen.includes(s)),
    );
    assert.ok(done.curatedDatasetUri?.startsWith('s3://savassan/curated/ds-'));
    const output = done.output as Record<string, unknown>;
    assert.equal(output['accuracy'], 1);
    assert.equal(output['heldOutAccuracy'], 1);
    assert.equal(output['trainingExamples'], 24);
    assert.equal(output['trainingSetTruncated'], false);
    assert.equal(output['reportUri'], `s3://savassan/models/${started.id}/report.json`);
    // The train node ran the trainer with the plan, the dataset and the labelled embeddings.
    const event = JSON.parse(trained[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(event).sort(), ['curatedDatasetUri', 'plan', 'trainingSet']);
    const report = JSON.parse((await blobs.get(`models/${started.id}/report.json`))!.toString('utf8')) as {
      evaluation: { labelled: { accuracy: number; examples: number }; heldOut: { accuracy: number; examples: number } };
      trainer: { trainAccuracy: number };
      planId: string;
    };
    assert.equal(report.evaluation.labelled.examples, 24);
    assert.equal(report.evaluation.labelled.accuracy, 1);
    assert.equal(report.evaluation.heldOut.examples, 4);
    assert.equal(report.planId, done.planId);
    const model = JSON.parse((await blobs.get(`models/${started.id}/model.json`))!.toString('utf8')) as {
      weights: number[];
    };
    assert.equal(model.weights.length, 8);
    assert.equal((await runs.list({ limit: 10 }))[0]?.id, started.id);
  });

  it('fails the run with the plan problems when the plan cannot be made', async () => {
    const llm = new ScriptedLlm(['not json at all']);
    const { runs } = await rig({ plans: (store) => createPlanService({ store, llm }) });
    const started = await runs.start({ prompt: 'something', source: { datasetId: 'dogs' } });
    const failed = await follow(runs, started.id, (v) => v.status === 'FAILED');
    assert.ok(failed.error !== null);
    assert.match(failed.error.message, /ended PARSING_ERROR: \$/);
    assert.equal(failed.curationId, null);
  });

  it('fails the run when the curation fails, saying why', async () => {
    const { runs } = await rig();
    const started = await runs.start({ prompt: 'LoRA of my cat', source: { datasetId: 'broken' } });
    const failed = await follow(runs, started.id, (v) => v.status === 'FAILED');
    assert.match(failed.error?.message ?? '', /curation cur-[a-z2-7]{26} failed: nothing could be embedded/);
  });

  it('refuses a run with a bad source or an unknown trainer, and unknown tasks at deploy', async () => {
    const { runs, deployer } = await rig();
    const refused = async (request: Parameters<FineTuneRuns['start']>[0], pattern: RegExp) =>
      assert.rejects(runs.start(request), (err: unknown) => {
        assert.ok(isPlatformError(err, 'BAD_REQUEST'), String(err));
        assert.match(err.rawMessage, pattern);
        return true;
      });
    await refused({ prompt: ' ', source: { datasetId: 'dogs' } }, /prompt/);
    await refused({ prompt: 'x', source: { rawDataUri: 's3://elsewhere/x' } }, /bucket: s3:\/\/savassan\/PREFIX/);
    await refused({ prompt: 'x', source: {} as never }, /exactly one of rawDataUri and datasetId/);
    await refused({ prompt: 'x', source: { datasetId: 'dogs' }, trainer: 'nope' }, /function nope does not exist/);
    await assert.rejects(
      deployer.deploy('bad', { nodes: { a: { function: 'savassan.nope' } } }),
      /node a: function: savassan.nope is not a built-in task \(built-in tasks: savassan.await-feedback, savassan.curate, savassan.evaluate, savassan.plan, savassan.train;/,
    );
  });

  it('caps the training set under the event limit, both labels kept, and says so', async () => {
    const { runs, curations } = await rig({ maxTrainingSetBytes: 2000 });
    const started = await runs.start({ prompt: 'LoRA of my dog', source: { datasetId: 'dogs' } });
    const waiting = await follow(runs, started.id, (v) => v.status === 'AWAITING_FEEDBACK');
    await curations.submitFeedback(
      waiting.curationId!,
      [
        { imageId: 'img-a00', accepted: true },
        { imageId: 'img-b00', accepted: false },
      ],
      true,
    );
    const done = await follow(runs, started.id, (v) => v.status === 'SUCCEEDED');
    const output = done.output as Record<string, unknown>;
    assert.equal(output['trainingSetTruncated'], true);
    assert.ok((output['trainingExamples'] as number) < 24);
  });
});

describe('trainingSetOf', () => {
  it('labels accepted and neighbour-accepted 1, rejected and neighbour-rejected 0, and alternates under a cap', () => {
    const manifest: CurationManifest = {
      datasetId: 'ds-x',
      curationId: 'cur-x',
      projectId: 'p',
      createdAt: '',
      embedder: 'e',
      dimensions: 2,
      images: [
        { imageId: 'a', uri: '', source: '', label: 'accepted', cluster: 0 },
        { imageId: 'b', uri: '', source: '', label: 'neighbour-accepted', cluster: 0 },
        { imageId: 'c', uri: '', source: '', label: 'kept', cluster: 1 },
      ],
      excluded: [
        { imageId: 'd', source: '', reason: 'rejected' },
        { imageId: 'e', source: '', reason: 'neighbour-rejected' },
        { imageId: 'f', source: '', reason: 'duplicate' },
      ],
    };
    const vectors = new Map(['a', 'b', 'c', 'd', 'e', 'f'].map((id) => [id, Float32Array.of(0.6, 0.8)]));
    const all = trainingSetOf(manifest, vectors, 1 << 20);
    assert.deepEqual(
      all.set.items.map((i) => [i.imageId, i.label]),
      [
        ['a', 1],
        ['d', 0],
        ['b', 1],
        ['e', 0],
      ],
    );
    assert.deepEqual(all.set.items[0]?.embedding, [0.6, 0.8]);
    assert.equal(all.truncated, false);
    const capped = trainingSetOf(manifest, vectors, 64 + 2 * 50);
    assert.deepEqual(
      capped.set.items.map((i) => i.imageId),
      ['a', 'd'],
    );
    assert.equal(capped.truncated, true);
    assert.equal(capped.labelled, 4);
  });
});
