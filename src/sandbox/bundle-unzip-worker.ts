/**
 * Worker thread that validates and inflates one code zip (`unzipBundle`), so a large bundle does not block the
 * Agent's event loop. Started by `unzipBundleOffThread` with the zip and limits as `workerData`; posts one reply and
 * exits. File contents travel back as transferred buffers (no copy).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isPlatformError } from '../core/errors.js';
import type { BundleLimits, UnzippedEntry } from './bundle-unzip.js';
import { unzipBundle } from './bundle-unzip.js';

export type UnzipReply = { ok: true; entries: UnzippedEntry[] } | { ok: false; invalid: boolean; message: string };

const { zip, limits } = workerData as { zip: Uint8Array; limits: Partial<BundleLimits> };
let reply: UnzipReply;
const transfer = new Set<ArrayBuffer>();
try {
  const entries = unzipBundle(zip, limits);
  for (const { data } of entries) {
    // Transfer only buffers an entry owns whole; a view into a shared one is copied.
    if (data !== null && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.byteLength > 0) {
      transfer.add(data.buffer as ArrayBuffer);
    }
  }
  reply = { ok: true, entries };
} catch (err) {
  const invalid = isPlatformError(err, 'INVALID_BUNDLE');
  reply = { ok: false, invalid, message: invalid ? err.rawMessage : err instanceof Error ? err.message : String(err) };
}
parentPort?.postMessage(reply, [...transfer]);
