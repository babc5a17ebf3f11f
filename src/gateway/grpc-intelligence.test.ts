// The intelligence services over gRPC: a real @grpc/grpc-js client against the server `--grpc-port` opens, beside
// ExecutionService, on a real SQLite store. The plan and curation services here are small implementations of their
// interfaces over that store (what the gRPC layer calls); the chain and the curator have their own tests.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { SqlIntelligenceStore } from '../adapters/sql/sql-intelligence-store.js';
import { SqlWorkflowStore } from '../adapters/sql/sql-workflow-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import type { CurationRecord } from '../core/ports/intelligence-store.js';
import { PlatformError } from '../core/errors.js';
import { maxPromptChars, type FineTunePlan } from '../core/plan.js';
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
import { newId } from '../intelligence/ids.js';
import type { CurationService, IntelligenceServices, PlanService, RunService } from '../intelligence/services.js';
import { BuiltinExecutionBackend } from '../workflows/builtin-backend.js';
import { WorkflowDeployer } from '../workflows/workflow-deployer.js';
import { serveExecutionService, type ExecutionServiceHandle } from './grpc-executions.js';

const plan: FineTunePlan = {
  base_model: 'stable-diffusion-v1-5',
  tuning_type: 'lora',
  subject_description: "the user's dog Fluffy",
  style_description: 'watercolour',
  dataset: { min_images: 10, recommended_images: 20, resolution: 512, needs_captions: false },
  hyperparameters: { learning_rate: 0.0001, train_steps: 1000, batch_size: 1, lora_rank: 8, lora_alpha: 8 },
};

/** Plans over the store: a prompt naming a dog gets the plan, any other a PARSING_ERROR; prompts checked first. */
function planService(store: SqlIntelligenceStore): PlanService & { readonly calls: number } {
  let calls = 0;
  return {
    planner: 'test',
    get calls() {
      return calls;
    },
    async createPlan(request) {
      if (request.prompt.trim() === '') throw new PlatformError('BAD_REQUEST', 'prompt must not be empty');
      if (request.prompt.length > maxPromptChars) {
        throw new PlatformError('PAYLOAD_TOO_LARGE', `prompt is over ${maxPromptChars} characters`);
      }
      if (request.requestId !== undefined) {
        const known = await store.getPlanByRequest(request.requestId);
        if (known !== null) return { record: known, created: false };
      }
      calls++;
      const id = newId('plan');
      const ok = /dog/i.test(request.prompt);
      return store.putPlan({
        id,
        requestId: request.requestId ?? id,
        userId: request.userId ?? 'anonymous',
        receivedAt: new Date(),
        userPrompt: request.prompt,
        llmPrompt: null,
        llmRawResponse: null,
        plan: ok ? plan : null,
        status: ok ? 'SUCCESS' : 'PARSING_ERROR',
        processingMs: 1,
        planner: 'test',
        attempts: ok ? 1 : 3,
        problems: ok ? [] : [{ path: '$.tuning_type', message: 'must be one of lora, dreambooth, full' }],
        warnings: ok ? ['resolution: defaulted to 512'] : [],
      });
    },
    getPlan: (id) => store.getPlan(id),
    listPlans: (query) => store.listPlans(query),
  };
}

/** Jobs written PENDING to the store (nothing embeds them: the test moves them on through the store). */
function curationService(store: SqlIntelligenceStore): CurationService {
  const unsupported = () => Promise.reject(new PlatformError('INTERNAL', 'not part of this test'));
  return {
    embedder: 'pixels-v1',
    bucket: 'savassan',
    addDatasetImage: unsupported,
    listDatasetImages: (datasetId) => store.listDatasetImages(datasetId),
    async start(request) {
      if (!/^[A-Za-z0-9._-]{1,128}$/.test(request.projectId)) {
        throw new PlatformError('BAD_REQUEST', 'projectId must be 1-128 of [A-Za-z0-9._-]');
      }
      if ('rawDataUri' in request.source && !request.source.rawDataUri.startsWith('s3://savassan/')) {
        throw new PlatformError('BAD_REQUEST', 'rawDataUri must be in bucket savassan');
      }
      const now = new Date();
      const job = await store.putCuration(
        {
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
          embedder: 'pixels-v1',
          createdAt: now,
          updatedAt: now,
        },
        null,
      );
      return job!;
    },
    get: (id) => store.getCuration(id),
    async submitFeedback(id, feedback, complete) {
      const job = await store.getCuration(id);
      if (job === null) throw new PlatformError('NOT_FOUND', `curation ${id} not found`);
      if (job.status !== 'AWAITING_FEEDBACK') throw new PlatformError('CONFLICT', `curation ${id} is ${job.status}`);
      const offered = new Set(job.imagesForFeedback.map((image) => image.imageId));
      const unknown = feedback.find((verdict) => !offered.has(verdict.imageId));
      if (unknown !== undefined) throw new PlatformError('BAD_REQUEST', `unknown image ${unknown.imageId}`);
      const verdicts = { ...job.feedback };
      for (const verdict of feedback) verdicts[verdict.imageId] = verdict.accepted;
      const { revision, ...rest } = job;
      const written = await store.putCuration(
        {
          ...rest,
          feedback: verdicts,
          ...(complete
            ? { status: 'COMPLETED', curatedDatasetId: 'ds-one', curatedDatasetUri: 's3://savassan/curated/ds-one/' }
            : {}),
        },
        revision,
      );
      if (written === null) throw new PlatformError('CONFLICT', 'the job changed meanwhile');
      return written;
    },
    openImage: () => Promise.resolve(null),
    waitForChange: () => Promise.resolve(null),
  };
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
  let close: () => Promise<void>;
  let handle: ExecutionServiceHandle;
  let store: SqlIntelligenceStore;
  let plans: PlanService & { readonly calls: number };
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
    const backend = new BuiltinExecutionBackend({ store: workflows, blobStore: new FsBlobStore(join(dir, 'blobs')) });
    const deployer = new WorkflowDeployer({ store: workflows, backend, functionExists: () => Promise.resolve(false) });
    plans = planService(store);
    const services: IntelligenceServices = { plans, curations: curationService(store), runs };
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
    close = () => metadata.close();
  });

  after(async () => {
    for (const client of [khaydarin, intelligence, curator, executions]) client.close();
    await handle.close();
    await close();
    await rm(dir, { recursive: true, force: true });
  });

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
    assert.deepEqual(first.structuredPlan, plan);
    assert.deepEqual(first.warnings, ['resolution: defaulted to 512']);
    assert.equal(first.planner, 'test');
    assert.deepEqual(first.problems, []);
    const stored = await store.getPlan(first.id);
    assert.equal(stored?.userId, 'alice');
    assert.equal(stored?.requestId, 'req-1');

    const calls = plans.calls;
    const again = await call<KhaydarinServiceProcessPromptResponse>((done) =>
      khaydarin.processPrompt({ requestId: 'req-1', userId: 'alice', userPrompt: 'something else' }, key, done),
    );
    assert.deepEqual(again, { ...first, created: false });
    assert.equal(plans.calls, calls, 'nothing re-ran');

    const failed = await call<KhaydarinServiceProcessPromptResponse>((done) =>
      khaydarin.processPrompt({ requestId: '', userId: '', userPrompt: 'hm' }, key, done),
    );
    assert.equal(failed.status, PlanStatus.PLAN_STATUS_PARSING_ERROR);
    assert.equal(failed.structuredPlan, undefined);
    assert.deepEqual(failed.problems, [{ path: '$.tuning_type', message: 'must be one of lora, dreambooth, full' }]);
    assert.equal((await store.getPlan(failed.id))?.userId, 'anonymous');
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
    assert.deepEqual(JSON.parse(answer.structuredPlanJson), plan);
    assert.equal(answer.message, '');
    assert.equal((await store.getPlanByRequest('session-7'))?.id, answer.workflowId);

    const failed = await call<ProcessPromptResponse>((done) =>
      intelligence.processPrompt({ sessionId: '', userId: '', naturalLanguagePrompt: 'paint something' }, key, done),
    );
    assert.equal(failed.status, PlanStatus.PLAN_STATUS_PARSING_ERROR);
    assert.equal(failed.structuredPlanJson, '');
    assert.equal(failed.message, '$.tuning_type: must be one of lora, dreambooth, full');
  });

  it('refused prompts and missing keys end the call with the mapped status and the PlatformError code', async () => {
    await assert.rejects(
      call<KhaydarinServiceProcessPromptResponse>((done) =>
        khaydarin.processPrompt({ requestId: '', userId: '', userPrompt: '   ' }, key, done),
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

  it('IntelligenceService.CurateData starts a job: its id now, the curated dataset once it completes', async () => {
    const started = await call<CurateDataResponse>((done) =>
      intelligence.curateData({ projectId: 'fluffy', rawDataUri: 's3://savassan/uploads/dogs/' }, key, done),
    );
    assert.match(started.curationJobId, /^cur-[a-z2-7]{26}$/);
    assert.equal(started.curatedDatasetId, '');
    assert.equal(started.curatedDataUri, '');
    assert.deepEqual((await store.getCuration(started.curationJobId))?.source, {
      rawDataUri: 's3://savassan/uploads/dogs/',
    });
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

  it('DataCuratorService: start, status through the job, feedback only while awaiting it, then COMPLETED', async () => {
    await assert.rejects(
      call<StartCurationResponse>((done) =>
        curator.startCuration({ projectId: 'p', rawDataUri: '', datasetId: '' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    await assert.rejects(
      call<StartCurationResponse>((done) =>
        curator.startCuration({ projectId: 'p', rawDataUri: 's3://savassan/a/', datasetId: 'd' }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    const { curationJobId } = await call<StartCurationResponse>((done) =>
      curator.startCuration({ projectId: 'fluffy', rawDataUri: '', datasetId: 'dogs' }, key, done),
    );
    const pending = await call<GetCurationStatusResponse>((done) =>
      curator.getCurationStatus({ curationJobId }, key, done),
    );
    assert.equal(pending.status, JobStatus.JOB_STATUS_PENDING);
    assert.equal(pending.projectId, 'fluffy');
    assert.equal(pending.curatedDatasetUri, '');
    assert.deepEqual(pending.progress, { total: 0, embedded: 0, failed: 0, duplicates: 0 });

    await assert.rejects(
      call<SubmitFeedbackResponse>((done) =>
        curator.submitFeedback({ curationJobId, feedback: [], complete: undefined }, key, done),
      ),
      failedWith(status.FAILED_PRECONDITION, 'CONFLICT'),
    );
    await assert.rejects(
      call<GetCurationStatusResponse>((done) => curator.getCurationStatus({ curationJobId: 'cur-missing' }, key, done)),
      failedWith(status.NOT_FOUND, 'NOT_FOUND'),
    );

    // The job embeds and offers a sample (as the curator writes it).
    const job = (await store.getCuration(curationJobId))!;
    const { revision, ...rest } = job;
    const awaiting: Omit<CurationRecord, 'revision'> = {
      ...rest,
      status: 'AWAITING_FEEDBACK',
      progress: { total: 5, embedded: 4, failed: 1, duplicates: 0 },
      imagesForFeedback: [
        { imageId: 'img-a', uri: 's3://savassan/datasets/dogs/raw/a.png', reason: 'cluster', cluster: 0 },
        { imageId: 'img-b', uri: 's3://savassan/datasets/dogs/raw/b.png', reason: 'outlier', cluster: 1 },
      ],
      errors: [{ file: 'c.png', message: 'not an image' }],
    };
    assert.ok(await store.putCuration(awaiting, revision));
    const offered = await call<GetCurationStatusResponse>((done) =>
      curator.getCurationStatus({ curationJobId }, key, done),
    );
    assert.equal(offered.status, JobStatus.JOB_STATUS_AWAITING_FEEDBACK);
    assert.deepEqual(offered.imagesForFeedback, [
      { imageId: 'img-a', imageUri: 's3://savassan/datasets/dogs/raw/a.png', reason: 'cluster', cluster: 0 },
      { imageId: 'img-b', imageUri: 's3://savassan/datasets/dogs/raw/b.png', reason: 'outlier', cluster: 1 },
    ]);
    assert.deepEqual(offered.progress, { total: 5, embedded: 4, failed: 1, duplicates: 0 });
    assert.deepEqual(offered.errors, [{ file: 'c.png', message: 'not an image' }]);
    assert.equal(offered.embedder, 'pixels-v1');

    await assert.rejects(
      call<SubmitFeedbackResponse>((done) =>
        curator.submitFeedback({ curationJobId, feedback: [{ imageId: 'img-z', accepted: true }] }, key, done),
      ),
      failedWith(status.INVALID_ARGUMENT, 'BAD_REQUEST'),
    );
    const recorded = await call<SubmitFeedbackResponse>((done) =>
      curator.submitFeedback(
        { curationJobId, feedback: [{ imageId: 'img-a', accepted: true }], complete: false },
        key,
        done,
      ),
    );
    assert.deepEqual(recorded, { acknowledged: true, status: JobStatus.JOB_STATUS_AWAITING_FEEDBACK });
    assert.deepEqual(
      (await call<GetCurationStatusResponse>((done) => curator.getCurationStatus({ curationJobId }, key, done)))
        .feedback,
      [{ imageId: 'img-a', accepted: true }],
    );

    const done = await call<SubmitFeedbackResponse>((done) =>
      curator.submitFeedback({ curationJobId, feedback: [{ imageId: 'img-b', accepted: false }] }, key, done),
    );
    assert.deepEqual(done, { acknowledged: true, status: JobStatus.JOB_STATUS_COMPLETED });
    const completed = await call<GetCurationStatusResponse>((done) =>
      curator.getCurationStatus({ curationJobId }, key, done),
    );
    assert.equal(completed.status, JobStatus.JOB_STATUS_COMPLETED);
    assert.equal(completed.curatedDatasetId, 'ds-one');
    assert.equal(completed.curatedDatasetUri, 's3://savassan/curated/ds-one/');
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
