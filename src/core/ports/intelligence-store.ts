import type {
  CurationFileError,
  CurationProgress,
  CurationSource,
  CurationStatus,
  ImageForFeedback,
} from '../curation.js';
import type { ExecutionKey } from './workflow-store.js';
import type { FineTunePlan, PlanProblem, PlanStatus } from '../plan.js';

/** One prompt-to-plan request and how it ended: the seed's `khaydarin_logs` row, plus what the chain tried. */
export interface PlanRecord {
  /** `plan-` + 26 lowercase base32 characters (random). */
  id: string;
  /** The caller's idempotency key (unique): a request with a known one gets that record back. Default: the id. */
  requestId: string;
  /** Default `anonymous`. */
  userId: string;
  receivedAt: Date;
  userPrompt: string;
  /** The prompt as the model got it (the template filled; the last attempt's, with repair messages). */
  llmPrompt: string | null;
  /** The model's last raw answer. */
  llmRawResponse: string | null;
  /** Set only with SUCCESS, and then valid. */
  plan: FineTunePlan | null;
  status: PlanStatus;
  processingMs: number;
  /** The planner that answered: `rule-based`, `openai-compatible:MODEL`, `llama-cpp:FILE`. */
  planner: string;
  /** Model calls made (1 + repairs); 0 for the rule-based planner. */
  attempts: number;
  /** With PARSING_ERROR: what the last answer broke; with LLM_ERROR: the model's failure as one problem at `$`. */
  problems: PlanProblem[];
  /** What the planner could not tell from the prompt and filled with a default (the rule-based planner says so). */
  warnings: string[];
}

/** One image uploaded into a dataset (`POST /v1/datasets/{datasetId}/images?name=FILE`). */
export interface DatasetImageRecord {
  datasetId: string;
  /** Unique in the dataset; a second upload under the same name replaces the first. */
  name: string;
  /** `img-` + 26 base32 characters, new on every upload. */
  imageId: string;
  /** Blob key of the bytes: `datasets/{datasetId}/raw/{name}`. */
  key: string;
  bytes: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  contentType: string;
  createdAt: Date;
}

/** A curation job (`POST /v1/curations`). */
export interface CurationRecord {
  /** `cur-` + 26 base32 characters. */
  id: string;
  projectId: string;
  source: CurationSource;
  status: CurationStatus;
  progress: CurationProgress;
  imagesForFeedback: ImageForFeedback[];
  /** The verdicts received, by image id (a later verdict on the same image replaces the earlier). */
  feedback: Record<string, boolean>;
  /** The curated dataset's id (`ds-` + 26 base32), set when the job completes. */
  curatedDatasetId: string | null;
  /** `s3://bucket/curated/{datasetId}/`, set when the job completes. */
  curatedDatasetUri: string | null;
  errors: CurationFileError[];
  /** With FAILED: why the job as a whole failed. */
  failure: string | null;
  /** The embedder's id (vectors of one job come from one embedder). */
  embedder: string;
  createdAt: Date;
  updatedAt: Date;
  /** Bumped by every write; `putCuration` compares it. */
  revision: number;
}

/** A prompt-to-model run of the `fine-tune` workflow (`POST /v1/intelligence/runs`). */
export interface IntelligenceRunRecord {
  /** `run-` + 26 base32 characters; also the execution's name. */
  id: string;
  prompt: string;
  userId: string;
  source: CurationSource;
  /** The `fine-tune` execution (project and domain as the execution API names them). */
  execution: ExecutionKey;
  createdAt: Date;
}

/** Where the intelligence layer keeps its records: the metadata store's database. */
export interface IntelligenceStore {
  /**
   * Insert unless a record with the same `requestId` exists; either way the stored record (`created`: whether this
   * call wrote it).
   */
  putPlan(record: PlanRecord): Promise<{ record: PlanRecord; created: boolean }>;
  getPlan(id: string): Promise<PlanRecord | null>;
  getPlanByRequest(requestId: string): Promise<PlanRecord | null>;
  /** Newest first; `before`: a `receivedAt` bound for the next page. At most `limit` (1-1000). */
  listPlans(query: { userId?: string | undefined; limit: number; before?: Date | undefined }): Promise<PlanRecord[]>;

  /** Insert or replace the image under (datasetId, name); returns the record replaced, if any. */
  putDatasetImage(record: DatasetImageRecord): Promise<DatasetImageRecord | null>;
  /** By name. */
  listDatasetImages(datasetId: string): Promise<DatasetImageRecord[]>;
  getDatasetImage(datasetId: string, imageId: string): Promise<DatasetImageRecord | null>;

  /**
   * Write a job when its stored revision is `expectedRevision` (null: it must not exist yet); returns the record
   * written (revision bumped) or null when another write came first.
   */
  putCuration(
    record: Omit<CurationRecord, 'revision'>,
    expectedRevision: number | null,
  ): Promise<CurationRecord | null>;
  getCuration(id: string): Promise<CurationRecord | null>;
  /** Jobs not COMPLETED or FAILED: resumed when the platform starts. */
  listActiveCurations(): Promise<CurationRecord[]>;

  /** Insert; CONFLICT when the id exists. */
  putRun(record: IntelligenceRunRecord): Promise<void>;
  getRun(id: string): Promise<IntelligenceRunRecord | null>;
  /** Newest first, at most `limit` (1-1000). */
  listRuns(query: { limit: number; before?: Date | undefined }): Promise<IntelligenceRunRecord[]>;
}
