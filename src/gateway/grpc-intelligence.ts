// The gateway's gRPC intelligence services (proto/savassan/v1/intelligence.proto): `IntelligenceService`,
// `KhaydarinService` and `DataCuratorService`, over the same service interfaces as the HTTP routes. Generated types
// stay here: requests become the services' requests, records become messages.
import type { Server, handleUnaryCall } from '@grpc/grpc-js';
import type { CurationStatus } from '../core/curation.js';
import { PlatformError } from '../core/errors.js';
import type { PlanStatus } from '../core/plan.js';
import type { CurationRecord, PlanRecord } from '../core/ports/intelligence-store.js';
import {
  DataCuratorServiceService,
  IntelligenceServiceService,
  JobStatus,
  KhaydarinServiceService,
  PlanStatus as PlanStatusMessage,
  type DataCuratorServiceServer,
  type GetCurationStatusResponse,
  type IntelligenceServiceServer,
  type KhaydarinServiceServer,
} from '../gen/savassan/v1/intelligence.js';
import type { IntelligenceServices } from '../intelligence/services.js';

/** Wraps a method's body as a unary handler (API key check, errors as statuses): the server's one policy. */
export type UnaryWrapper = <Req, Res>(
  method: string,
  body: (request: Req) => Promise<Res>,
) => handleUnaryCall<Req, Res>;

const planStatuses: Record<PlanStatus, PlanStatusMessage> = {
  SUCCESS: PlanStatusMessage.PLAN_STATUS_SUCCESS,
  LLM_ERROR: PlanStatusMessage.PLAN_STATUS_LLM_ERROR,
  PARSING_ERROR: PlanStatusMessage.PLAN_STATUS_PARSING_ERROR,
};

const jobStatuses: Record<CurationStatus, JobStatus> = {
  PENDING: JobStatus.JOB_STATUS_PENDING,
  EMBEDDING: JobStatus.JOB_STATUS_EMBEDDING,
  AWAITING_FEEDBACK: JobStatus.JOB_STATUS_AWAITING_FEEDBACK,
  COMPLETED: JobStatus.JOB_STATUS_COMPLETED,
  FAILED: JobStatus.JOB_STATUS_FAILED,
};

/** An optional string field: empty is absent. */
function optional(value: string): string | undefined {
  return value === '' ? undefined : value;
}

function required(value: string, field: string): string {
  if (value === '') throw new PlatformError('BAD_REQUEST', `${field} is required`);
  return value;
}

/** The problems of a plan that did not succeed, in a line. */
function problemsLine(record: PlanRecord): string {
  return record.problems.map((problem) => `${problem.path}: ${problem.message}`).join('; ');
}

function curationStatusOf(record: CurationRecord): GetCurationStatusResponse {
  return {
    curationJobId: record.id,
    status: jobStatuses[record.status],
    imagesForFeedback: record.imagesForFeedback.map((image) => ({
      imageId: image.imageId,
      imageUri: image.uri,
      reason: image.reason,
      cluster: image.cluster,
    })),
    curatedDatasetUri: record.curatedDatasetUri ?? '',
    projectId: record.projectId,
    progress: { ...record.progress },
    curatedDatasetId: record.curatedDatasetId ?? '',
    failure: record.failure ?? '',
    errors: record.errors.map((error) => ({ file: error.file, message: error.message })),
    embedder: record.embedder,
    feedback: Object.entries(record.feedback).map(([imageId, accepted]) => ({ imageId, accepted })),
  };
}

/**
 * Add the three intelligence services to `server`, each call through `unary`.
 *
 * @example
 * serveGrpc(address, (server) => {
 *   server.addService(ExecutionServiceService, executions);
 *   addIntelligenceServices(server, intelligence, unary);
 * });
 */
export function addIntelligenceServices(server: Server, services: IntelligenceServices, unary: UnaryWrapper): void {
  const { plans, curations } = services;

  const intelligence: IntelligenceServiceServer = {
    processPrompt: unary('ProcessPrompt', async (request) => {
      const { record } = await plans.createPlan({
        prompt: request.naturalLanguagePrompt,
        userId: optional(request.userId),
        requestId: optional(request.sessionId),
      });
      return {
        workflowId: record.id,
        structuredPlanJson: record.plan === null ? '' : JSON.stringify(record.plan),
        status: planStatuses[record.status],
        message: record.status === 'SUCCESS' ? '' : problemsLine(record),
      };
    }),
    curateData: unary('CurateData', async (request) => {
      const job = await curations.start({
        projectId: request.projectId,
        source: { rawDataUri: required(request.rawDataUri, 'raw_data_uri') },
      });
      // The job has only started: the curated dataset is named once it completes (GetCurationStatus).
      return { curationJobId: job.id, curatedDatasetId: '', curatedDataUri: '' };
    }),
  };

  const khaydarin: KhaydarinServiceServer = {
    processPrompt: unary('ProcessPrompt', async (request) => {
      const { record, created } = await plans.createPlan({
        prompt: request.userPrompt,
        userId: optional(request.userId),
        requestId: optional(request.requestId),
      });
      return {
        structuredPlan: record.plan === null ? undefined : (JSON.parse(JSON.stringify(record.plan)) as object),
        id: record.id,
        status: planStatuses[record.status],
        created,
        problems: record.problems.map((problem) => ({ path: problem.path, message: problem.message })),
        warnings: [...record.warnings],
        planner: record.planner,
      };
    }),
  };

  const curator: DataCuratorServiceServer = {
    startCuration: unary('StartCuration', async (request) => {
      const rawDataUri = optional(request.rawDataUri);
      const datasetId = optional(request.datasetId);
      if ((rawDataUri === undefined) === (datasetId === undefined)) {
        throw new PlatformError('BAD_REQUEST', 'give exactly one of raw_data_uri and dataset_id');
      }
      const job = await curations.start({
        projectId: request.projectId,
        source: rawDataUri !== undefined ? { rawDataUri } : { datasetId: datasetId! },
      });
      return { curationJobId: job.id };
    }),
    getCurationStatus: unary('GetCurationStatus', async (request) => {
      const id = required(request.curationJobId, 'curation_job_id');
      const job = await curations.get(id);
      if (job === null) throw new PlatformError('NOT_FOUND', `curation job ${id} not found`);
      return curationStatusOf(job);
    }),
    submitFeedback: unary('SubmitFeedback', async (request) => {
      const id = required(request.curationJobId, 'curation_job_id');
      const job = await curations.submitFeedback(
        id,
        request.feedback.map((verdict) => ({ imageId: verdict.imageId, accepted: verdict.accepted })),
        request.complete ?? true,
      );
      return { acknowledged: true, status: jobStatuses[job.status] };
    }),
  };

  server.addService(IntelligenceServiceService, intelligence);
  server.addService(KhaydarinServiceService, khaydarin);
  server.addService(DataCuratorServiceService, curator);
}
