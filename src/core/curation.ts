/** A curation job's states, in the order a job moves through them (the seed's `JobStatus`). */
export const curationStatusNames = ['PENDING', 'EMBEDDING', 'AWAITING_FEEDBACK', 'COMPLETED', 'FAILED'] as const;
export type CurationStatus = (typeof curationStatusNames)[number];

/** States a job never leaves. */
export const terminalCurationStatuses: ReadonlySet<CurationStatus> = new Set(['COMPLETED', 'FAILED']);

/** An image offered to the user for a verdict. */
export interface ImageForFeedback {
  imageId: string;
  /** `s3://bucket/key`; the console shows it through `GET /v1/curations/{id}/images/{imageId}`. */
  uri: string;
  /** Why it was picked: `cluster` (its cluster's most central image), `outlier`, `uncertain` (between clusters). */
  reason: 'cluster' | 'outlier' | 'uncertain';
  /** Its cluster's index (0-based). */
  cluster: number;
}

/** A file that could not be curated, and why (never stops the job). */
export interface CurationFileError {
  /** The file's name (its key under the raw prefix, or its upload name). */
  file: string;
  message: string;
}

export interface CurationProgress {
  /** Images found. */
  total: number;
  /** Embedded so far. */
  embedded: number;
  /** Files that failed (see `errors`). */
  failed: number;
  /** Dropped as near-duplicates of another image. */
  duplicates: number;
}

/** Where a job's images come from: an `s3://` prefix or an uploaded dataset. */
export type CurationSource = { rawDataUri: string } | { datasetId: string };

/** One image of a curated dataset's manifest (`s3://…/curated/{datasetId}/manifest.json`). */
export interface CuratedImage {
  imageId: string;
  /** The curated copy: `s3://bucket/curated/{datasetId}/images/{imageId}{ext}`. */
  uri: string;
  /** The file it came from. */
  source: string;
  /** accepted / rejected by the user; `neighbour-accepted`: pulled in by an accepted neighbour; `kept`: no verdict. */
  label: 'accepted' | 'rejected' | 'neighbour-accepted' | 'kept';
  cluster: number;
}

/** The curated dataset's manifest, written to the blob store with the images when a job completes. */
export interface CurationManifest {
  datasetId: string;
  curationId: string;
  projectId: string;
  createdAt: string;
  embedder: string;
  dimensions: number;
  /** The images in the dataset (accepted and kept ones); rejected images and their pushed-out neighbours are not. */
  images: CuratedImage[];
  /** What was left out and why: `rejected`, `neighbour-rejected`, `duplicate`. */
  excluded: { imageId: string; source: string; reason: 'rejected' | 'neighbour-rejected' | 'duplicate' }[];
}
