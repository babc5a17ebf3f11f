/**
 * The built-in tasks of the `fine-tune` workflow: plan → curate → await feedback → (train: a deployed function) →
 * evaluate. Each calls the intelligence services; the waiting ones follow the curation job with `waitForChange`
 * until the node's time is up.
 */
import type { CurationManifest, CurationSource } from '../core/curation.js';
import { isDnsLabel } from '../core/dns-label.js';
import { PlatformError } from '../core/errors.js';
import { maxEventBytes } from '../core/function-config.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { CurationRecord } from '../core/ports/intelligence-store.js';
import type { VectorStore } from '../core/ports/vector-store.js';
import { executionBlobPrefix } from '../workflows/values.js';
import type { CurationService, PlanService } from './services.js';
import type { BuiltinTask, BuiltinTaskContext } from './tasks.js';

export const planTask = 'savassan.plan';
export const curateTask = 'savassan.curate';
export const awaitFeedbackTask = 'savassan.await-feedback';
export const trainTask = 'savassan.train';
export const evaluateTask = 'savassan.evaluate';

/** Every built-in task name (deploys accept these; engines pin them). */
export const builtinTaskNames: ReadonlySet<string> = new Set([
  planTask,
  curateTask,
  awaitFeedbackTask,
  trainTask,
  evaluateTask,
]);

/** The default training function (`examples/fine-tune-trainer`). */
export const defaultTrainer = 'fine-tune-trainer';

/**
 * Most bytes of JSON the training set may take in the train node's event: the event limit less room for the plan,
 * the dataset URI and the envelope.
 */
export const maxTrainingSetBytes = maxEventBytes - 512 * 1024;

/** One labelled example: an image's embedding, 1 (wanted) or 0 (not). */
export interface TrainingItem {
  imageId: string;
  label: 0 | 1;
  embedding: number[];
}

export interface TrainingSet {
  dimensions: number;
  items: TrainingItem[];
}

export interface FineTuneTaskOptions {
  plans: PlanService;
  curations: CurationService;
  /** Where the curator keeps the embeddings (a collection per curation job, named by its id). */
  vectors: VectorStore;
  blobStore: BlobStore;
  /** The blob store's bucket as `s3://` URIs name it. */
  bucket: string;
  /** Cap on the training set's JSON (default `maxTrainingSetBytes`; tests lower it). */
  maxTrainingSetBytes?: number | undefined;
}

function bad(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

function objectInput(task: string, input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw bad(`${task} takes an object`);
  }
  return input as Record<string, unknown>;
}

function optionalString(task: string, input: Record<string, unknown>, field: string): string | undefined {
  const value = input[field];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw bad(`${task}: ${field} must be a string`);
  return value;
}

function requiredString(task: string, input: Record<string, unknown>, field: string): string {
  const value = optionalString(task, input, field);
  if (value === undefined) throw bad(`${task}: ${field} is required`);
  return value;
}

/** The blob key under the bucket an `s3://BUCKET/KEY` URI names (BAD_REQUEST for another bucket). */
export function blobKeyOf(uri: string, bucket: string): string {
  const prefix = `s3://${bucket}/`;
  if (!uri.startsWith(prefix)) throw bad(`${uri} is not in the platform's bucket ${bucket}`);
  return uri.slice(prefix.length);
}

/** Follows a curation job until `done` says so (true: the job as it is then), failing the task when the job fails. */
async function followCuration(
  curations: CurationService,
  id: string,
  done: (record: CurationRecord) => boolean,
  context: BuiltinTaskContext,
): Promise<CurationRecord> {
  let record = await curations.get(id);
  for (;;) {
    if (record === null) throw new PlatformError('NOT_FOUND', `curation ${id} does not exist`);
    if (record.status === 'FAILED') {
      throw bad(`curation ${id} failed: ${record.failure ?? 'no reason given'}`);
    }
    if (done(record)) return record;
    const next = await curations.waitForChange(id, record.revision, context.signal);
    if (next === null) {
      throw PlatformError.from(context.signal.reason ?? new PlatformError('UNAVAILABLE', 'the wait was stopped'));
    }
    record = next;
  }
}

/** Significant digits an embedding's entries keep in the training set (their JSON stays small). */
const embeddingDigits = 6;

/**
 * The labelled examples of a completed job: accepted and neighbour-accepted images are 1, rejected and
 * neighbour-rejected are 0 (kept images and duplicates have no label), each with its embedding. Capped at
 * `maxBytes` of JSON, taking the classes in turn so both stay represented.
 */
export function trainingSetOf(
  manifest: CurationManifest,
  vectors: Map<string, Float32Array>,
  maxBytes: number,
): { set: TrainingSet; labelled: number; truncated: boolean } {
  const positives: string[] = [];
  const negatives: string[] = [];
  for (const image of manifest.images) {
    if (image.label === 'accepted' || image.label === 'neighbour-accepted') positives.push(image.imageId);
  }
  for (const image of manifest.excluded) {
    if (image.reason === 'rejected' || image.reason === 'neighbour-rejected') negatives.push(image.imageId);
  }
  const candidates: { imageId: string; label: 0 | 1 }[] = [];
  for (let i = 0; i < Math.max(positives.length, negatives.length); i += 1) {
    if (i < positives.length) candidates.push({ imageId: positives[i]!, label: 1 });
    if (i < negatives.length) candidates.push({ imageId: negatives[i]!, label: 0 });
  }
  const items: TrainingItem[] = [];
  let bytes = 64;
  let labelled = 0;
  let truncated = false;
  for (const candidate of candidates) {
    const vector = vectors.get(candidate.imageId);
    if (vector === undefined) continue;
    labelled += 1;
    if (truncated) continue;
    const item: TrainingItem = {
      ...candidate,
      embedding: Array.from(vector, (v) => Number(v.toPrecision(embeddingDigits))),
    };
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (bytes + size > maxBytes) {
      truncated = true;
      continue;
    }
    bytes += size;
    items.push(item);
  }
  return { set: { dimensions: manifest.dimensions, items }, labelled, truncated };
}

/** The probe a trainer returns. */
interface Probe {
  weights: number[];
  bias: number;
  dimensions: number;
}

function probeOf(value: unknown, dimensions: number): Probe {
  const model = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const weights = model['weights'];
  const bias = model['bias'];
  if (
    !Array.isArray(weights) ||
    weights.length !== dimensions ||
    !weights.every((w) => typeof w === 'number' && Number.isFinite(w)) ||
    typeof bias !== 'number' ||
    !Number.isFinite(bias)
  ) {
    throw bad(`the trainer's model must be {weights: ${dimensions} finite numbers, bias: a finite number}`);
  }
  return { weights: weights as number[], bias, dimensions };
}

/** The share of `items` the probe labels right (a score of 0.5 or more is 1), with the confusion counts. */
export function scoreProbe(
  probe: Probe,
  items: readonly TrainingItem[],
): {
  examples: number;
  accuracy: number | null;
  truePositives: number;
  falsePositives: number;
  trueNegatives: number;
  falseNegatives: number;
} {
  const counts = { truePositives: 0, falsePositives: 0, trueNegatives: 0, falseNegatives: 0 };
  for (const item of items) {
    let z = probe.bias;
    for (let i = 0; i < probe.dimensions; i += 1) z += (probe.weights[i] ?? 0) * (item.embedding[i] ?? 0);
    const predicted = z >= 0 ? 1 : 0;
    if (predicted === 1 && item.label === 1) counts.truePositives += 1;
    else if (predicted === 1) counts.falsePositives += 1;
    else if (item.label === 0) counts.trueNegatives += 1;
    else counts.falseNegatives += 1;
  }
  const right = counts.truePositives + counts.trueNegatives;
  return { examples: items.length, accuracy: items.length === 0 ? null : right / items.length, ...counts };
}

/**
 * A run id a task was given, which must be its own execution's name (a run's execution is named after the run): a
 * workflow of someone else's cannot replay another run's plan or write over its model.
 */
function ownRunId(task: string, runId: string | undefined, context: BuiltinTaskContext): string | undefined {
  if (runId !== undefined && runId !== context.ref.name) {
    throw bad(`${task}: runId must be this execution's name (${context.ref.name}), got ${runId}`);
  }
  return runId;
}

/** The tasks of the `fine-tune` workflow over the intelligence services. */
export function fineTuneTasks(options: FineTuneTaskOptions): BuiltinTask[] {
  const { plans, curations, vectors, blobStore, bucket } = options;
  const maxBytes = options.maxTrainingSetBytes ?? maxTrainingSetBytes;
  return [
    {
      kind: 'run',
      name: planTask,
      timeoutSeconds: 600,
      async run(raw, context) {
        const input = objectInput(planTask, raw);
        const prompt = requiredString(planTask, input, 'prompt');
        const userId = optionalString(planTask, input, 'userId');
        const runId = ownRunId(planTask, optionalString(planTask, input, 'runId'), context);
        const planId = optionalString(planTask, input, 'planId');
        let record;
        if (planId !== undefined) {
          // A plan stored before the run (the user's edit): used as it is, nothing planned.
          record = await plans.getPlan(planId);
          if (record === null) throw bad(`${planTask}: plan ${planId} does not exist`);
        } else {
          // The run's id as the request id: the same run asks once (a repeat of the attempt replays the record).
          ({ record } = await plans.createPlan({
            prompt,
            userId,
            // Per attempt: a rerun of the same attempt (after a crash) replays its record, a retry plans again.
            requestId: runId === undefined ? undefined : `${runId}:plan:${context.ref.attempt}`,
          }));
        }
        if (record.status !== 'SUCCESS' || record.plan === null) {
          const problems = record.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
          const message = `plan ${record.id} ended ${record.status}${problems === '' ? '' : `: ${problems}`}`;
          // The model could not be asked: the platform's failure, which a retry may get past.
          if (record.status === 'LLM_ERROR') throw new PlatformError('UNAVAILABLE', message);
          throw bad(message);
        }
        return {
          planId: record.id,
          plan: record.plan,
          planner: record.planner,
          warnings: record.warnings,
        };
      },
    },
    {
      kind: 'run',
      name: curateTask,
      timeoutSeconds: 6 * 3600,
      async run(raw, context) {
        const input = objectInput(curateTask, raw);
        const projectId = requiredString(curateTask, input, 'projectId');
        const rawDataUri = optionalString(curateTask, input, 'rawDataUri');
        const datasetId = optionalString(curateTask, input, 'datasetId');
        if ((rawDataUri === undefined) === (datasetId === undefined)) {
          throw bad(`${curateTask}: exactly one of rawDataUri and datasetId`);
        }
        const source: CurationSource = rawDataUri !== undefined ? { rawDataUri } : { datasetId: datasetId! };
        // The job this node started is noted beside the execution's values: an attempt run again (its process
        // stopped mid-wait) follows that job instead of starting another.
        const noteKey = `${executionBlobPrefix(context.ref)}/${context.ref.node}.curation.json`;
        const noted = await blobStore.get(noteKey);
        let curationId =
          noted === null ? null : (JSON.parse(noted.toString('utf8')) as { curationId: string }).curationId;
        if (curationId === null || (await curations.get(curationId)) === null) {
          const started = await curations.start({ projectId, source });
          curationId = started.id;
          await blobStore.put(noteKey, JSON.stringify({ curationId }));
          context.logger.info({ curation: curationId }, 'curation started');
        }
        const record = await followCuration(
          curations,
          curationId,
          (r) => r.status === 'AWAITING_FEEDBACK' || r.status === 'COMPLETED',
          context,
        );
        return {
          curationId: record.id,
          status: record.status,
          progress: record.progress,
          imagesForFeedback: record.imagesForFeedback.length,
          errors: record.errors.length,
        };
      },
    },
    {
      kind: 'run',
      name: awaitFeedbackTask,
      timeoutSeconds: 24 * 3600,
      async run(raw, context) {
        const input = objectInput(awaitFeedbackTask, raw);
        const curationId = requiredString(awaitFeedbackTask, input, 'curationId');
        const record = await followCuration(curations, curationId, (r) => r.status === 'COMPLETED', context);
        if (record.curatedDatasetUri === null || record.curatedDatasetId === null) {
          throw new PlatformError('INTERNAL', `curation ${curationId} completed without a dataset`);
        }
        const manifestKey = `${blobKeyOf(record.curatedDatasetUri, bucket)}manifest.json`;
        const bytes = await blobStore.get(manifestKey);
        if (bytes === null) throw new PlatformError('NOT_FOUND', `the manifest ${manifestKey} is missing`);
        const manifest = JSON.parse(bytes.toString('utf8')) as CurationManifest;
        const stored = await vectors.list(curationId);
        const byId = new Map(stored.map((v) => [v.id, v.vector]));
        const { set, labelled, truncated } = trainingSetOf(manifest, byId, maxBytes);
        return {
          curationId,
          curatedDatasetUri: record.curatedDatasetUri,
          datasetId: record.curatedDatasetId,
          images: manifest.images.length,
          trainingSet: set,
          labelled,
          truncated,
          ...(truncated
            ? {
                note: `the training set holds ${set.items.length} of ${labelled} labelled images: capped at ${maxBytes} bytes of JSON so the train node's event stays under ${maxEventBytes} bytes`,
              }
            : {}),
        };
      },
    },
    {
      kind: 'forward',
      name: trainTask,
      timeoutSeconds: 3600,
      forward(raw) {
        const input = objectInput(trainTask, raw);
        const trainer = optionalString(trainTask, input, 'trainer') ?? defaultTrainer;
        if (!isDnsLabel(trainer)) throw bad(`${trainTask}: trainer ${JSON.stringify(trainer)} is not a function name`);
        const { trainer: _trainer, ...event } = input;
        return { functionName: trainer, qualifier: 'live', event };
      },
    },
    {
      kind: 'run',
      name: evaluateTask,
      timeoutSeconds: 600,
      async run(raw, context) {
        const input = objectInput(evaluateTask, raw);
        const runId = ownRunId(evaluateTask, requiredString(evaluateTask, input, 'runId'), context)!;
        if (!isDnsLabel(runId)) throw bad(`${evaluateTask}: runId must be a lowercase label`);
        const set = input['trainingSet'] as TrainingSet | undefined;
        if (typeof set !== 'object' || set === null || !Array.isArray(set.items)) {
          throw bad(`${evaluateTask}: trainingSet is required`);
        }
        const training = (input['training'] ?? {}) as Record<string, unknown>;
        const probe = probeOf(training['model'], set.dimensions);
        const metrics = (training['metrics'] ?? {}) as Record<string, unknown>;
        const all = scoreProbe(probe, set.items);
        const heldOutIds = Array.isArray(training['heldOut']) ? new Set(training['heldOut'] as unknown[]) : null;
        const heldOut =
          heldOutIds === null || heldOutIds.size === 0
            ? null
            : scoreProbe(
                probe,
                set.items.filter((item) => heldOutIds.has(item.imageId)),
              );
        const modelKey = `models/${runId}/model.json`;
        const reportKey = `models/${runId}/report.json`;
        const report = {
          runId,
          createdAt: new Date().toISOString(),
          planId: optionalString(evaluateTask, input, 'planId') ?? null,
          plan: input['plan'] ?? null,
          curatedDatasetUri: optionalString(evaluateTask, input, 'curatedDatasetUri') ?? null,
          modelUri: `s3://${bucket}/${modelKey}`,
          trainer: metrics,
          evaluation: { labelled: all, heldOut },
        };
        await blobStore.put(modelKey, JSON.stringify(probe));
        await blobStore.put(reportKey, `${JSON.stringify(report, null, 2)}\n`);
        return {
          reportUri: `s3://${bucket}/${reportKey}`,
          modelUri: report.modelUri,
          examples: all.examples,
          accuracy: all.accuracy,
          heldOutAccuracy: heldOut?.accuracy ?? null,
        };
      },
    },
  ];
}
