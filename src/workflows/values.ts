import { PlatformError } from '../core/errors.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { ExecutionKey, StoredValue } from '../core/ports/workflow-store.js';
import { inlineOutputBytes } from '../core/workflow-spec.js';

/** The blob key prefix of an execution's values. */
export function executionBlobPrefix(key: ExecutionKey): string {
  return `workflows/${key.project}/${key.domain}/${key.name}`;
}

/** The blob key of a node attempt's output: `workflows/{project}/{domain}/{name}/{nodeKey}/{attempt}.json`. */
export function nodeOutputBlobKey(key: ExecutionKey, nodeKey: string, attempt: number): string {
  return `${executionBlobPrefix(key)}/${blobSafe(nodeKey)}/${attempt}.json`;
}

/** Map element keys (`m[3]`) as blob key segments (`m-3`). */
function blobSafe(nodeKey: string): string {
  return nodeKey.replace(/\[(\d+)\]$/, '-$1');
}

/** The blob key of any other value of an execution (`inputs`, `output`, `NODE.input-2`). */
export function valueBlobKey(key: ExecutionKey, what: string): string {
  return `${executionBlobPrefix(key)}/${blobSafe(what)}.json`;
}

/** JSON text kept inline up to `inlineOutputBytes`, else in the blob store under `blobKey`. */
export async function storeJson(blobs: BlobStore, json: string, blobKey: string): Promise<StoredValue> {
  const bytes = Buffer.byteLength(json);
  if (bytes <= inlineOutputBytes) return { inline: json };
  await blobs.put(blobKey, json);
  return { blobKey, bytes };
}

/** The JSON text of a stored value. */
export async function loadJson(blobs: BlobStore, value: StoredValue): Promise<string> {
  if ('inline' in value) return value.inline;
  const data = await blobs.get(value.blobKey);
  if (data === null) throw new PlatformError('INTERNAL', `the workflow value ${value.blobKey} is missing`);
  return data.toString('utf8');
}

/** A stored value, parsed; null for null. */
export async function loadValue(blobs: BlobStore, value: StoredValue | null): Promise<unknown> {
  if (value === null) return null;
  return JSON.parse(await loadJson(blobs, value)) as unknown;
}

/** `project/domain/name`: an execution's key as one string. */
export function executionId(key: ExecutionKey): string {
  return `${key.project}/${key.domain}/${key.name}`;
}
