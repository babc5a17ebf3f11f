// What the fine-tune wizard reads and sends: plans (`/v1/plans`), uploaded datasets (`/v1/datasets`), curations
// (`/v1/curations`) and runs (`/v1/intelligence/runs`), with the shapes of their answers; the plan's types, limits
// and validator come from the platform's core.
import type { ImageForFeedback } from '../../../src/core/curation.js';
import type { CurationProgress, CurationStatus } from '../../../src/core/curation.js';
import type { FineTunePlan, PlanProblem, PlanStatus } from '../../../src/core/plan.js';
import { enc, getJson, request } from '../api';

export type { CurationProgress, CurationStatus, FineTunePlan, ImageForFeedback, PlanProblem, PlanStatus };

export interface PlanView {
  id: string;
  requestId: string;
  userId: string;
  status: PlanStatus;
  plan: FineTunePlan | null;
  planner: string;
  attempts: number;
  processingMs: number;
  receivedAt: string;
  problems: PlanProblem[];
  warnings: string[];
  prompt: string;
}

export interface UploadedImage {
  datasetId: string;
  imageId: string;
  name: string;
  uri: string;
  bytes: number;
  sha256: string;
}

export interface CurationView {
  id: string;
  projectId: string;
  status: CurationStatus;
  progress: CurationProgress;
  imagesForFeedback: ImageForFeedback[];
  feedback: { imageId: string; accepted: boolean }[];
  curatedDatasetId: string | null;
  curatedDatasetUri: string | null;
  errors: { file: string; message: string }[];
  failure: string | null;
  embedder: string;
}

export { runStatusNames as runStatuses, terminalRunStatuses } from '../../../src/intelligence/services.js';
export type { RunStatus, RunView } from '../../../src/intelligence/services.js';
import type { RunView } from '../../../src/intelligence/services.js';

/** A line of the trainer's output, as the run socket sends it. */
export interface RunLogLine {
  functionName: string;
  invocationId: string | null;
  version: number | null;
  stream: 'stdout' | 'stderr';
  line: string;
  time: string;
}

/** The workflow every run executes. */
export const fineTuneWorkflow = 'fine-tune';

/** Dataset ids as the upload path takes them. */
export const datasetIdPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Image names as the upload path takes them. */
export const imageNamePattern = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** Plans from the prompt; with `plan` (the user's edit), stores that plan (validated) instead. */
export const createPlan = (prompt: string, plan?: FineTunePlan) =>
  getJson<PlanView>('/v1/plans', { method: 'POST', body: plan === undefined ? { prompt } : { prompt, plan } });

/** A file name the upload path takes: characters outside its set become `-`, a leading dot `_`, cut at 128. */
export function uploadName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^\./, '_');
  return cleaned.slice(0, 128) || 'image';
}

export const uploadImage = (datasetId: string, name: string, file: Blob) =>
  getJson<UploadedImage>(`/v1/datasets/${enc(datasetId)}/images?name=${enc(name)}`, {
    method: 'POST',
    blobBody: file,
  });

/** Starts a run of the stored plan `planId` (the one the user reviewed) on the dataset. */
export const startRun = (prompt: string, datasetId: string, planId: string) =>
  getJson<RunView>('/v1/intelligence/runs', { method: 'POST', body: { prompt, datasetId, planId } });

export const runPath = (id: string) => `/v1/intelligence/runs/${enc(id)}`;
export const curationPath = (id: string) => `/v1/curations/${enc(id)}`;

export const submitFeedback = (curationId: string, feedback: { imageId: string; accepted: boolean }[]) =>
  getJson<CurationView>(`${curationPath(curationId)}/feedback`, {
    method: 'POST',
    body: { feedback, complete: true },
  });

/** An image of a curation as an object URL (the request carries the key; an `<img src>` could not). */
export async function imageUrl(curationId: string, imageId: string, signal: AbortSignal): Promise<string> {
  const response = await request(`${curationPath(curationId)}/images/${enc(imageId)}`, { signal });
  return URL.createObjectURL(await response.blob());
}

/** A new dataset id for an upload: `ft-` and 10 random base-36 characters. */
export function newDatasetId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return `ft-${Array.from(bytes, (b) => (b % 36).toString(36)).join('')}`;
}
