import type { Readable } from 'node:stream';
import type { CurationSource } from '../core/curation.js';
import type {
  CurationRecord,
  DatasetImageRecord,
  IntelligenceRunRecord,
  PlanRecord,
} from '../core/ports/intelligence-store.js';

/** What the HTTP routes, gRPC services and workflow tasks of the intelligence layer call. */

export interface PlanRequest {
  prompt: string;
  userId?: string | undefined;
  requestId?: string | undefined;
  /**
   * A plan the user wrote or edited: no planner runs; it is validated (BAD_REQUEST listing the problems, nothing
   * stored) and stored as a SUCCESS record of planner `user`.
   */
  plan?: unknown;
}

/** Khaydarin: prompt → validated plan, every request logged. */
export interface PlanService {
  /** The active planner, as records name it: `rule-based`, `openai-compatible:MODEL`, `llama-cpp:FILE`. */
  readonly planner: string;
  /**
   * BAD_REQUEST / PAYLOAD_TOO_LARGE for a prompt refused before any model sees it, or a given `plan` that fails
   * validation (nothing logged then).
   */
  createPlan(request: PlanRequest): Promise<{ record: PlanRecord; created: boolean }>;
  getPlan(id: string): Promise<PlanRecord | null>;
  listPlans(query: { userId?: string | undefined; limit: number; before?: Date | undefined }): Promise<PlanRecord[]>;
}

export interface StartCurationRequest {
  projectId: string;
  source: CurationSource;
}

export interface Verdict {
  imageId: string;
  accepted: boolean;
}

/** The data curator: uploads, jobs, feedback. */
export interface CurationService {
  /** The embedder's id. */
  readonly embedder: string;
  /** The bucket its `s3://` URIs name (the blob store's: the S3 store's bucket, `savassan` otherwise). */
  readonly bucket: string;
  /** Store an uploaded image (`length` bytes of `body`); `replaced`: an image of that name existed. */
  addDatasetImage(
    datasetId: string,
    name: string,
    body: Readable,
    length: number,
  ): Promise<{ record: DatasetImageRecord; replaced: boolean }>;
  listDatasetImages(datasetId: string): Promise<DatasetImageRecord[]>;
  /** Validates the request (BAD_REQUEST naming the field), writes the job PENDING and starts it. */
  start(request: StartCurationRequest): Promise<CurationRecord>;
  get(id: string): Promise<CurationRecord | null>;
  /** CONFLICT unless AWAITING_FEEDBACK; BAD_REQUEST for an unknown image (nothing applied). */
  submitFeedback(id: string, feedback: readonly Verdict[], complete: boolean): Promise<CurationRecord>;
  /**
   * One of the job's embedded images (offered for feedback, or in its curated dataset), streamed, for the console;
   * null when the job has no such image or its bytes are not an image's.
   */
  openImage(id: string, imageId: string): Promise<{ body: Readable; contentType: string } | null>;
  /** Resolves with the job once its revision is past `revision` (or at once if it is), or null at `signal`. */
  waitForChange(id: string, revision: number, signal: AbortSignal): Promise<CurationRecord | null>;
}

export const runStatusNames = [
  'PLANNING',
  'CURATING',
  'AWAITING_FEEDBACK',
  'TRAINING',
  'EVALUATING',
  'SUCCEEDED',
  'FAILED',
  'ABORTED',
] as const;
export type RunStatus = (typeof runStatusNames)[number];

/** The states a run never leaves. */
export const terminalRunStatuses: ReadonlySet<RunStatus> = new Set(['SUCCEEDED', 'FAILED', 'ABORTED']);

export interface StartRunRequest {
  prompt: string;
  source: CurationSource;
  userId?: string | undefined;
  /** The training function (default `fine-tune-trainer`). */
  trainer?: string | undefined;
  /** A stored SUCCESS plan (e.g. one the user edited) the run uses instead of planning from the prompt. */
  planId?: string | undefined;
}

/** A run as the API shows it: the record and where its execution is. */
export interface RunView {
  id: string;
  status: RunStatus;
  prompt: string;
  userId: string;
  execution: IntelligenceRunRecord['execution'];
  planId: string | null;
  plan: PlanRecord['plan'];
  curationId: string | null;
  curatedDatasetUri: string | null;
  /** The evaluate step's output once SUCCEEDED. */
  output: unknown;
  error: { code: string; message: string } | null;
  createdAt: string;
}

/** Prompt-to-model runs of the `fine-tune` workflow. */
export interface RunService {
  start(request: StartRunRequest): Promise<RunView>;
  get(id: string): Promise<RunView | null>;
  list(query: { limit: number; before?: Date | undefined }): Promise<RunView[]>;
}

/** The intelligence layer as the gateway serves it. */
export interface IntelligenceServices {
  plans: PlanService;
  curations: CurationService;
  runs: RunService;
}
