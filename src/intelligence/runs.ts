/**
 * Prompt-to-model runs: a run is a record (its prompt, source and execution) and an execution of the `fine-tune`
 * workflow; its view is derived from the execution's phase and node rows each time it is read.
 */
import { isDnsLabel } from '../core/dns-label.js';
import { PlatformError } from '../core/errors.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { ExecutionBackend, NodeExecutionView } from '../core/ports/execution-backend.js';
import type { IntelligenceRunRecord, IntelligenceStore } from '../core/ports/intelligence-store.js';
import type { ExecutionKey, WorkflowStore } from '../core/ports/workflow-store.js';
import { loadValue } from '../workflows/values.js';
import type { VectorStore } from '../core/ports/vector-store.js';
import { defaultTrainer, fineTuneTasks } from './fine-tune-tasks.js';
import { newId } from './ids.js';
import { checkPlanRequest } from './plan/plan-service.js';
import type { BuiltinTaskRunner } from './tasks.js';
import type { CurationService, PlanService, RunService, RunStatus, RunView, StartRunRequest } from './services.js';

/** The workflow a run executes (`fineTuneSpec`, deployed at start when absent). */
export const fineTuneWorkflow = 'fine-tune';
/** Where runs' executions live: the execution API's defaults. */
export const runProject = 'savassan';
export const runDomain = 'development';

/** The workflow's nodes, in order, and the run status while each runs. */
const nodeStatuses: readonly [string, RunStatus][] = [
  ['plan', 'PLANNING'],
  ['curate', 'CURATING'],
  ['feedback', 'AWAITING_FEEDBACK'],
  ['train', 'TRAINING'],
  ['evaluate', 'EVALUATING'],
];

const datasetIdPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface RunServiceOptions {
  store: IntelligenceStore;
  backend: ExecutionBackend;
  plans: Pick<PlanService, 'getPlan'>;
  curations: Pick<CurationService, 'get' | 'listDatasetImages'>;
  /** A node's output (null until it succeeded): `storeNodeOutputs` over the built-in engine's store. */
  nodeOutput: (key: ExecutionKey, nodeId: string) => Promise<unknown>;
  /** Whether a function exists (the trainer). */
  functionExists: (name: string) => Promise<boolean>;
  /** The blob store's bucket: a `rawDataUri` must name it. */
  bucket: string;
  now?: (() => Date) | undefined;
}

/** `nodeOutput` over a workflow store and its blob store. */
export function storeNodeOutputs(
  store: Pick<WorkflowStore, 'getNode'>,
  blobs: BlobStore,
): (key: ExecutionKey, nodeId: string) => Promise<unknown> {
  return async (key, nodeId) => {
    const row = await store.getNode(key, nodeId);
    return row === null || row.phase !== 'SUCCEEDED' ? null : loadValue(blobs, row.output);
  };
}

function bad(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Starts `fine-tune` executions for runs and reads them back as run views. */
export class FineTuneRuns implements RunService {
  readonly #options: RunServiceOptions;
  readonly #now: () => Date;

  constructor(options: RunServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async start(request: StartRunRequest): Promise<RunView> {
    // The plan service's own checks: a prompt it would refuse never starts a run.
    const { prompt, userId } = checkPlanRequest({ prompt: request.prompt, userId: request.userId });
    const trainer = request.trainer ?? defaultTrainer;
    if (typeof trainer !== 'string' || !isDnsLabel(trainer)) {
      throw bad(`trainer must be a function name, got ${JSON.stringify(trainer)}`);
    }
    if (!(await this.#options.functionExists(trainer)))
      throw bad(
        `trainer: function ${trainer} does not exist` +
          (trainer === defaultTrainer
            ? ' (deploy the CPU trainer with: savassan deploy fine-tune-trainer examples/fine-tune-trainer)'
            : ''),
      );
    const source = this.#source(request.source);
    if ('datasetId' in source && (await this.#options.curations.listDatasetImages(source.datasetId)).length === 0) {
      // As `POST /v1/curations` answers: refused now rather than failing at the curate step.
      throw bad(`dataset ${source.datasetId} has no images: upload some first`);
    }
    const planId = await this.#plan(request.planId);
    const id = newId('run');
    const execution = { project: runProject, domain: runDomain, name: id };
    const record: IntelligenceRunRecord = { id, prompt, userId, source, execution, createdAt: this.#now() };
    await this.#options.store.putRun(record);
    try {
      await this.#options.backend.launch({
        ...execution,
        workflow: fineTuneWorkflow,
        inputs: {
          prompt,
          user_id: userId,
          raw_data_uri: 'rawDataUri' in source ? source.rawDataUri : '',
          dataset_id: 'datasetId' in source ? source.datasetId : '',
          project_id: id,
          trainer,
          run_id: id,
          // Only when given: a fine-tune workflow deployed before the input existed still runs plain runs.
          ...(planId === undefined ? {} : { plan_id: planId }),
        },
      });
    } catch (err) {
      const error = PlatformError.from(err);
      if (error.code === 'NOT_FOUND') {
        throw new PlatformError(
          'UNAVAILABLE',
          `the ${fineTuneWorkflow} workflow is not deployed: ${error.rawMessage}`,
          {
            cause: err,
          },
        );
      }
      throw error;
    }
    return this.#view(record);
  }

  async get(id: string): Promise<RunView | null> {
    const record = await this.#options.store.getRun(id);
    return record === null ? null : this.#view(record);
  }

  async list(query: { limit: number; before?: Date | undefined }): Promise<RunView[]> {
    const records = await this.#options.store.listRuns(query);
    return Promise.all(records.map((record) => this.#view(record)));
  }

  /** A run's `planId`: a stored SUCCESS plan (BAD_REQUEST naming why not). */
  async #plan(planId: unknown): Promise<string | undefined> {
    if (planId === undefined) return undefined;
    if (typeof planId !== 'string' || planId === '') throw bad('planId must be a plan id');
    const plan = await this.#options.plans.getPlan(planId);
    if (plan === null) throw bad(`planId: no plan ${planId}`);
    if (plan.status !== 'SUCCESS' || plan.plan === null) {
      throw bad(`planId: plan ${planId} ended ${plan.status}; only a SUCCESS plan can run`);
    }
    return planId;
  }

  #source(source: StartRunRequest['source'] | undefined): StartRunRequest['source'] {
    const given = (source ?? {}) as { rawDataUri?: unknown; datasetId?: unknown };
    const hasUri = given.rawDataUri !== undefined;
    const hasDataset = given.datasetId !== undefined;
    if (hasUri === hasDataset) throw bad('give exactly one of rawDataUri and datasetId');
    if (hasDataset) {
      if (typeof given.datasetId !== 'string' || !datasetIdPattern.test(given.datasetId)) {
        throw bad('datasetId must be 1-63 lowercase letters, digits and dashes, starting with a letter or digit');
      }
      return { datasetId: given.datasetId };
    }
    const { bucket } = this.#options;
    if (typeof given.rawDataUri !== 'string' || !given.rawDataUri.startsWith('s3://')) {
      throw bad(`rawDataUri must be s3://${bucket}/PREFIX`);
    }
    if (!given.rawDataUri.startsWith(`s3://${bucket}/`) && given.rawDataUri !== `s3://${bucket}`) {
      throw bad(`rawDataUri must be in the platform's bucket: s3://${bucket}/PREFIX`);
    }
    return { rawDataUri: given.rawDataUri };
  }

  async #view(record: IntelligenceRunRecord): Promise<RunView> {
    const { backend, nodeOutput } = this.#options;
    const view: RunView = {
      id: record.id,
      status: 'PLANNING',
      prompt: record.prompt,
      userId: record.userId,
      execution: record.execution,
      planId: null,
      plan: null,
      curationId: null,
      curatedDatasetUri: null,
      output: null,
      error: null,
      createdAt: record.createdAt.toISOString(),
    };
    let phase;
    let nodes: NodeExecutionView[];
    try {
      const execution = await backend.get(record.execution);
      phase = execution.closure.phase;
      if (execution.closure.error !== undefined) {
        view.error = { code: execution.closure.error.code, message: execution.closure.error.message };
      }
      nodes = await backend.nodeExecutions(record.execution);
    } catch (err) {
      const error = PlatformError.from(err);
      if (error.code !== 'NOT_FOUND') throw error;
      // Its execution never started (the launch failed) or was deleted.
      return { ...view, status: 'FAILED', error: { code: 'NOT_FOUND', message: 'the run has no execution' } };
    }
    const phaseOf = new Map(nodes.map((n) => [n.id.node_id, n]));
    const planOutput =
      phaseOf.get('plan')?.closure.phase === 'SUCCEEDED' ? await nodeOutput(record.execution, 'plan') : null;
    view.planId = text(field(planOutput, 'planId'));
    if (view.planId !== null) view.plan = (await this.#options.plans.getPlan(view.planId))?.plan ?? null;
    const curateOutput =
      phaseOf.get('curate')?.closure.phase === 'SUCCEEDED' ? await nodeOutput(record.execution, 'curate') : null;
    view.curationId = text(field(curateOutput, 'curationId'));
    if (view.curationId !== null) {
      view.curatedDatasetUri = (await this.#options.curations.get(view.curationId))?.curatedDatasetUri ?? null;
    }
    if (phase === 'SUCCEEDED') {
      view.status = 'SUCCEEDED';
      view.output = (await backend.data(record.execution)).outputs;
      return view;
    }
    if (phase === 'ABORTED' || phase === 'ABORTING') return { ...view, status: 'ABORTED' };
    if (phase === 'FAILED' || phase === 'FAILING' || phase === 'TIMED_OUT') {
      if (view.error === null) {
        const failed = nodes.find((n) => n.closure.error !== undefined);
        if (failed?.closure.error !== undefined) {
          view.error = { code: failed.closure.error.code, message: failed.closure.error.message };
        }
      }
      return { ...view, status: 'FAILED' };
    }
    // Running: the status of the first node not done yet (the nodes run one after another).
    for (const [nodeId, status] of nodeStatuses) {
      view.status = status;
      if (phaseOf.get(nodeId)?.closure.phase !== 'SUCCEEDED') break;
    }
    return view;
  }
}

export interface FineTunePipelineOptions {
  store: IntelligenceStore;
  plans: PlanService;
  curations: CurationService;
  /** The curator's vector store (the training set's embeddings). */
  vectors: VectorStore;
  blobStore: BlobStore;
  /** The blob store's bucket as `s3://` URIs name it (default: the curator's). */
  bucket?: string | undefined;
  /** Where runs' executions are launched and read. */
  backend: ExecutionBackend;
  /** The built-in engine's store: the plan and curate nodes' outputs are read from it. */
  workflowStore: Pick<WorkflowStore, 'getNode'>;
  functionExists: (name: string) => Promise<boolean>;
  /** The engine's task runner: the fine-tune tasks are provided to it. */
  tasks: BuiltinTaskRunner;
  /** Cap on the training set's JSON (default `maxTrainingSetBytes`). */
  maxTrainingSetBytes?: number | undefined;
}

/**
 * The fine-tune pipeline for a composition root: provides the workflow's tasks to the engine's runner and gives the
 * run service (`IntelligenceServices.runs`).
 *
 * @example
 * const runs = createFineTunePipeline({ store, plans, curations, vectors, blobStore, backend,
 *   workflowStore, functionExists, tasks: platform.builtinTasks });
 */
export function createFineTunePipeline(options: FineTunePipelineOptions): RunService {
  const bucket = options.bucket ?? options.curations.bucket;
  options.tasks.provide(
    fineTuneTasks({
      plans: options.plans,
      curations: options.curations,
      vectors: options.vectors,
      blobStore: options.blobStore,
      bucket,
      maxTrainingSetBytes: options.maxTrainingSetBytes,
    }),
  );
  return new FineTuneRuns({
    store: options.store,
    backend: options.backend,
    plans: options.plans,
    curations: options.curations,
    nodeOutput: storeNodeOutputs(options.workflowStore, options.blobStore),
    functionExists: options.functionExists,
    bucket,
  });
}
