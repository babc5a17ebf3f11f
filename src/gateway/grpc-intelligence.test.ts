// The intelligence services over gRPC: a real @grpc/grpc-js client against the server `--grpc-port` opens, beside
// ExecutionService, with the real plan service (its model a small `Llm` that answers by the prompt's words) and the
// real curator (pixels embedder, exact vector store, file blob store) on a SQLite intelligence store.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { PixelEmbedder } from '../adapters/images/pixel-embedder.js';
import { MemoryVectorStore } from '../adapters/memory/memory-vector-store.js';
import { SqlIntelligenceStore } from '../adapters/sql/sql-intelligence-store.js';
import { SqlWorkflowStore } from '../adapters/sql/sql-workflow-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import type { CurationRecord } from '../core/ports/intelligence-store.js';
import type { Llm, LlmRequest, LlmResponse } from '../core/ports/llm.js';
import { PlatformError } from '../core/errors.js';
import { maxPromptChars } from '../core/plan.js';
import { validatePlan } from '../core/plan-validate.js';
import {
  type CurateDataResponse,
  type GetCurationStatusResponse,
  type KhaydarinServiceProcessPromptResponse,
  type ProcessPromptResponse,
  type StartCurationResponse,
  type SubmitFeedbackResponse,
  DataCuratorServiceClient,
  IntelligenceServiceClient,
  JobStatus,
  KhaydarinServiceClient,
  PlanStatus,
} from '../gen/savassan/v1/intelligence.js';
import { ExecutionServiceClient, ExecutionStatus, type ExecuteWorkflowResponse } from '../gen/savassan/v1/execution.js';
import { errorCodeKey } from '../grpc/grpc-errors.js';
import { bearerMetadata } from '../grpc/grpc-transport.js';
import { CurationJobs } from '../intelligence/curate/curation-jobs.js';
import { createPlanService } from '../intelligence/plan/plan-service.js';
import type { IntelligenceServices, RunService } from '../intelligence/services.js';
import { BuiltinExecutionBackend } from '../workflows/builtin-backend.js';
import { WorkflowDeployer } from '../workflows/workflow-deployer.js';
import { syntheticImages } from '../../test/helpers/synthetic-images.js';
import { validPlan } from '../../test/helpers/scripted-llm.js';
import { serveExecutionService, type ExecutionServiceHandle } from './grpc-executions.js';

/** A model that answers by the user's words: `offline` fails, `babble` answers no JSON, anything else a valid plan. */
class WordsLlm implements Llm {
  readonly kind = 'words';
  readonly model = 'test';
  readonly constrained = false;
  calls = 0;
  complete(request: LlmRequest): Promise<LlmResponse> {
    this.calls++;
    const asked = request.messages.map((message) => message.content).join('\n');
    if (asked.includes('offline')) return Promise.reject(new PlatformError('UNAVAILABLE', 'the model is offline'));
    const text = asked.includes('babble') ? 'Sure! Here is a plan: train it well.' : JSON.stringify(validPlan);
    return Promise.resolve({ text, model: this.model });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const runs: RunService = {
  start: () => Promise.reject(new PlatformError('INTERNAL', 'not part of this test')),
  get: () => Promise.resolve(null),
  list: () => Promise.resolve([]),
};

/** A unary call as a promise: `start` makes the call with the callback given. */
function call<Res>(start: (callback: (err: ServiceError | null, response: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    start((err, response) => (err === null ? resolve(response) : reject(err)));
  });
}

/** A failed call's gRPC status and the PlatformError code of its trailer. */
function failedWith(grpcStatus: status, code: string): (err: unknown) => boolean {
  return (err) => {
    const { code: got, metadata } = err as ServiceError;
    assert.equal(got, grpcStatus);
    assert.deepEqual(metadata.get(errorCodeKey), [code]);
    return true;
  };
}

describe('gRPC intelligence services', () => {
  let dir: string;
  let closeStores: () => Promise<void>;
  let handle: ExecutionServiceHandle;
  let store: SqlIntelligenceStore;
  let blobs: FsBlobStore;
  let llm: WordsLlm;
  let jobs: CurationJobs;
  let khaydarin: KhaydarinServiceClient;
  let intelligence: IntelligenceServiceClient;
  let curator: DataCuratorServiceClient;
  let executions: ExecutionServiceClient;
  const key = bearerMetadata('k1');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sv-grpc-intelligence-'));
    const metadata = await openSqliteMetadataStore(join(dir, 'metadata.db'));
    const workflows = new SqlWorkflowStore(metadata.shared());
    store = new SqlIntelligenceStore(metadata.shared());
    blobs = new FsBlobStore(join(dir, 'blobs'));
    const backend = new BuiltinExecutionBackend({ store: workflows, blobStore: blobs });
    const deployer = new WorkflowDeployer({ store: workflows, backend, functionExists: () => Promise.resolve(false) });
    llm = new WordsLlm();
    const embedder = new PixelEmbedder();
    jobs = new CurationJobs({
      store,
      blobs,
      bucket: 'savassan',
      embedder,
      vectors: new MemoryVectorStore(embedder.dimensions),
      batchSize: 5,
      pollMs: 50,
    });
    const services: IntelligenceServices = { plans: createPlanService({ store, llm }), curations: jobs, runs };
    handle = await serveExecutionService({
      address: '127.0.0.1:0',
      backend,
      deployer,
      intelligence: services,
      apiKeys: ['k1'],
      graceMs: 100,
    });
    khaydarin = new KhaydarinServiceClient(handle.address, credentials.createInsecure());
    intelligence = new IntelligenceServiceClient(handle.address, credentials.createInsecure());
    curator = new DataCuratorServiceClient(handle.address, credentials.createInsecure());
    executions = new ExecutionServiceClient(handle.address, credentials.createInsecure());
    closeStores = async () => {
      await jobs.close();
      await embedder.close();
      await metadata.close();
    };
  });

  after(async () => {
    for (const client of [khaydarin, intelligence, curator, executions]) client.close();
    await handle.close();
    await closeStores();
    await rm(dir, { recursive: true, force: true });
  });

  /** The job once it stops at `until` or ends, followed through the curator's change feed. */
  async function settled(id: string, until: CurationRecord['status']): Promise<CurationRecord> {
    let record = (await jobs.get(id))!;
    while (record.status !== until && record.status !== 'COMPLETED' && record.status !== 'FAILED') {
      const next = await jobs.waitForChange(id, record.revision, AbortSignal.timeout(120_000));
      assert.ok(next !== null, 'the job stopped changing');
      record = next;
    }
    return record;
  }

  it('KhaydarinService.ProcessPrompt: the plan as a Struct with id and status; a known request id answers again', async () => {
    const first = await call<KhaydarinServiceProcessPromptResponse>((done) =>
      khaydarin.processPrompt(
        { requestId: 'req-1', userId: 'alice', userPrompt: 'Teach it my dog Fluffy in watercolour' },
        key,
        done,
      ),
    );
    assert.match(first.id, /^plan-[a-z2-7]{26}$/);
    assert.equal(first.status, PlanStatus.PLAN_STATUS_SUCCESS);
    assert.equal(first.created, true);
    assert.equal(first.planner, 'words:test');
    assert.deepEqual(first.problems, []);
    // The Struct carries the validated plan (its numbers as doubles: the same values).
    assert.deepEqual(validatePlan(first.structuredPlan).plan, validPlan);
    const stored = await store.getPlan(first.id);
    assert.equal(stored?.userId, 'alice');
    assert.equal(stored?.requestId, 'req-1');
    assert.deepEqual(stored?.plan, first.structuredPlan);

    const calls = llm.calls;
    const again = await call<KhaydarinServiceProcessPromptResponse>((done) =>
      khaydarin.processPrompt({ requestId: 'req-1', userId: 'alice', userPrompt: 'something else' }, key, done),
    );
    assert.deepEqual(again, { ...first, created: false });
    assert.equal(llm.calls, calls, 'nothing re-ran');

    const babble = await call<KhaydarinServiceProcessPromptResponse>((done) =>
      khaydarin.processPrompt({ requestId: '', userId: '', userPrompt: 'babble about my dog' }, key, done),
    );
    assert.equal(babble.status, PlanStatus.PLAN_STATUS_PARSING_ERROR);
    assert.equal(babble.structuredPlan, undefined);
    assert.ok(babble.problems.length > 0);
    assert.equal((await store.getPlan(babble.id))?.userId, 'anonymous');
    assert.equal((await store.getPlan(babble.id))?.attempts, 3);

    const offline = await call<KhaydarinServiceProcessPromptResponse>((done) =>
      khaydarin.processPrompt({ requestId: '', userId: '', userPrompt: 'offline dog' }, key, done),
    );
    assert.equal(offline.status, PlanStatus.PLAN_STATUS_LLM_ERROR);
    assert.equal(offline.structuredPlan, undefined);
    assert.match(offline.problems.map((problem) => problem.message).join(), /offline/);
  });

  it('IntelligenceService.ProcessPrompt: the plan as JSON, the session id as the idempotency key', async () => {
    const answer = await call<ProcessPromptResponse>((done) =>
      intelligence.processPrompt(
        { sessionId: 'session-7', userId: 'bob', naturalLanguagePrompt: 'a LoRA of my dog' },
        key,
        done,
      ),
    );
    assert.equal(answer.status, PlanStatus.PLAN_STATUS_SUCCESS);
    assert.deepEqual(JSON.parse(answer.structuredPlanJson), validPlan);
    assert.equal(answer.message, '');
    assert.equal((await store.getPlanByRequest('session-7'))?.id, answer.workflowId);

    const failed = await call<ProcessPromptResponse>((done) =>
      intelligence.processPrompt({ sessionId: '', userId: '', naturalLanguagePrompt: 'babble' }, key, done),
    );
    assert.equal(failed.status, PlanStatus.PLAN_STATUS_PARSING_ERROR);
    assert.equal(failed.structuredPlanJson, '');
    const record = await store.getPlan(failed.workflowId);
    assert.equal(failed.message, record!.problems.map((problem) => `${problem.path}: ${problem.message}`).join('; '));
  });

  it('refused prompts and missing keys end the call with the mapped status and the PlatformError code', async () => {
    await assert.rejects(
      call<KhaydarinServiceProcessPromptResponse>((done) =>
        khaydarin.processPrompt({ requestId: '', userId: '', userPrompt: '   ' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    await assert.rejects(
      call<KhaydarinServiceProcessPromptResponse>((done) =>
        khaydarin.processPrompt({ requestId: 'bad id!', userId: '', userPrompt: 'my dog' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    await assert.rejects(
      call<ProcessPromptResponse>((done) =>
        intelligence.processPrompt(
          { sessionId: '', userId: '', naturalLanguagePrompt: 'x'.repeat(maxPromptChars + 1) },
          key,
          done,
        ),
      ),
      failedWith(status.RESOURCE_EXHAUSTED, 'PAYLOAD_TOO_LARGE'),
    );
    await assert.rejects(
      call<KhaydarinServiceProcessPromptResponse>((done) =>
        khaydarin.processPrompt({ requestId: '', userId: '', userPrompt: 'my dog' }, new Metadata(), done),
      ),
      failedWith(status.UNAUTHENTICATED, 'UNAUTHORIZED'),
    );
    await assert.rejects(
      call<GetCurationStatusResponse>((done) =>
        curator.getCurationStatus({ curationJobId: 'cur-x' }, bearerMetadata('wrong'), done),
      ),
      failedWith(status.UNAUTHENTICATED, 'UNAUTHORIZED'),
    );
  });

  it('IntelligenceService.CurateData starts a job over an s3:// prefix: its id now, the dataset once it completes', async () => {
    for (const image of await syntheticImages({ clusters: 2, perCluster: 3, broken: false, outliers: 0 })) {
      await blobs.put(`uploads/shapes/${image.name}`, image.bytes);
    }
    const started = await call<CurateDataResponse>((done) =>
      intelligence.curateData({ projectId: 'fluffy', rawDataUri: 's3://savassan/uploads/shapes/' }, key, done),
    );
    assert.match(started.curationJobId, /^cur-[a-z2-7]{26}$/);
    assert.equal(started.curatedDatasetId, '');
    assert.equal(started.curatedDataUri, '');
    const awaiting = await settled(started.curationJobId, 'AWAITING_FEEDBACK');
    assert.equal(awaiting.status, 'AWAITING_FEEDBACK');
    assert.deepEqual(awaiting.source, { rawDataUri: 's3://savassan/uploads/shapes/' });

    await assert.rejects(
      call<CurateDataResponse>((done) => intelligence.curateData({ projectId: 'fluffy', rawDataUri: '' }, key, done)),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    await assert.rejects(
      call<CurateDataResponse>((done) =>
        intelligence.curateData({ projectId: 'fluffy', rawDataUri: 's3://other/x/' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
  });

  it('DataCuratorService: start over a dataset, follow the job, feedback only while it awaits it, then COMPLETED', async () => {
    const images = await syntheticImages({ perCluster: 4 });
    for (const image of images) {
      await jobs.addDatasetImage('dogs', image.name, Readable.from([image.bytes]), image.bytes.length);
    }
    await assert.rejects(
      call<StartCurationResponse>((done) =>
        curator.startCuration({ projectId: 'p', rawDataUri: '', datasetId: '' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    await assert.rejects(
      call<StartCurationResponse>((done) =>
        curator.startCuration({ projectId: 'p', rawDataUri: 's3://savassan/a/', datasetId: 'dogs' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    const { curationJobId } = await call<StartCurationResponse>((done) =>
      curator.startCuration({ projectId: 'fluffy', rawDataUri: '', datasetId: 'dogs' }, key, done),
    );
    await assert.rejects(
      call<GetCurationStatusResponse>((done) => curator.getCurationStatus({ curationJobId: 'cur-missing' }, key, done)),
      failedWith(status.NOT_FOUND, 'NOT_FOUND'),
    );

    const job = await settled(curationJobId, 'AWAITING_FEEDBACK');
    assert.equal(job.status, 'AWAITING_FEEDBACK');
    const offered = await call<GetCurationStatusResponse>((done) =>
      curator.getCurationStatus({ curationJobId }, key, done),
    );
    assert.equal(offered.status, JobStatus.JOB_STATUS_AWAITING_FEEDBACK);
    assert.equal(offered.projectId, 'fluffy');
    assert.equal(offered.curatedDatasetUri, '');
    assert.deepEqual(
      offered.imagesForFeedback,
      job.imagesForFeedback.map((image) => ({
        imageId: image.imageId,
        imageUri: image.uri,
        reason: image.reason,
        cluster: image.cluster,
      })),
    );
    assert.ok(offered.imagesForFeedback.length > 0);
    assert.deepEqual(offered.progress, job.progress);
    assert.ok(offered.errors.length > 0, 'the broken files are reported');
    assert.deepEqual(offered.errors, job.errors);
    assert.equal(offered.embedder, 'pixels-v1');

    const [first, second] = offered.imagesForFeedback;
    assert.ok(first !== undefined && second !== undefined);
    await assert.rejects(
      call<SubmitFeedbackResponse>((done) =>
        curator.submitFeedback({ curationJobId, feedback: [{ imageId: 'img-unknown', accepted: true }] }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    const recorded = await call<SubmitFeedbackResponse>((done) =>
      curator.submitFeedback(
        { curationJobId, feedback: [{ imageId: first.imageId, accepted: true }], complete: false },
        key,
        done,
      ),
    );
    assert.deepEqual(recorded, { acknowledged: true, status: JobStatus.JOB_STATUS_AWAITING_FEEDBACK });
    const withVerdict = await call<GetCurationStatusResponse>((done) =>
      curator.getCurationStatus({ curationJobId }, key, done),
    );
    assert.deepEqual(withVerdict.feedback, [{ imageId: first.imageId, accepted: true }]);

    const done = await call<SubmitFeedbackResponse>((callback) =>
      curator.submitFeedback(
        { curationJobId, feedback: [{ imageId: second.imageId, accepted: false }] },
        key,
        callback,
      ),
    );
    assert.deepEqual(done, { acknowledged: true, status: JobStatus.JOB_STATUS_COMPLETED });
    const completed = await call<GetCurationStatusResponse>((callback) =>
      curator.getCurationStatus({ curationJobId }, key, callback),
    );
    assert.equal(completed.status, JobStatus.JOB_STATUS_COMPLETED);
    assert.match(completed.curatedDatasetId, /^ds-[a-z2-7]{26}$/);
    assert.equal(completed.curatedDatasetUri, `s3://savassan/curated/${completed.curatedDatasetId}/`);
    assert.ok(await blobs.exists(`curated/${completed.curatedDatasetId}/manifest.json`));

    // Over: feedback is refused.
    await assert.rejects(
      call<SubmitFeedbackResponse>((callback) =>
        curator.submitFeedback({ curationJobId, feedback: [] }, key, callback),
      ),
      failedWith(status.FAILED_PRECONDITION, 'CONFLICT'),
    );
  });

  it('ExecutionService answers on the same server', async () => {
    const launched = await call<ExecuteWorkflowResponse>((done) =>
      executions.executeWorkflow(
        {
          workflowId: 'missing',
          flyteWorkflowDefinitionJson: '',
          project: '',
          domain: '',
          inputsJson: '',
          executionName: '',
        },
        key,
        done,
      ),
    );
    assert.equal(launched.status, ExecutionStatus.EXECUTION_STATUS_FAILED);
    assert.equal(launched.errorCode, 'NOT_FOUND');
  });
});
