import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable, Transform } from 'node:stream';
import type { CuratedImage, CurationFileError, CurationManifest, CurationSource } from '../../core/curation.js';
import { parseBlobPrefix } from '../../core/blob-keys.js';
import { PlatformError } from '../../core/errors.js';
import { sniffImageType } from '../../core/image-type.js';
import type { Logger } from '../../core/logger.js';
import { silentLogger } from '../../core/logger.js';
import type { BlobStore } from '../../core/ports/blob-store.js';
import type { Embedder } from '../../core/ports/embedder.js';
import type { CurationRecord, DatasetImageRecord, IntelligenceStore } from '../../core/ports/intelligence-store.js';
import type { StoredVector, VectorStore } from '../../core/ports/vector-store.js';
import { newId } from '../ids.js';
import type { CurationService, StartCurationRequest, Verdict } from '../services.js';
import { refine, type RefineOptions } from './refine.js';
import { sampleForFeedback, type SampleItem, type SamplingOptions } from './sampling.js';

/** Largest image accepted, uploaded or read from a raw prefix. */
export const maxImageBytes = 25 * 1024 * 1024;
/** Verdicts one feedback call may carry. */
export const maxVerdicts = 1000;
/** Dataset ids chosen by users (the upload path). */
export const datasetIdPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Upload names: 1-128 of `[A-Za-z0-9._-]`, not starting with a dot. */
export const imageNamePattern = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
export const projectIdPattern = /^[A-Za-z0-9._-]{1,128}$/;
/**
 * Top-level areas of the blob store that hold the platform's own data (function code, invocation logs, workflow
 * values, fine-tuned models): a raw prefix may neither start in one nor be the beginning of one's name, since a
 * listing matches partial segments (`logs` lists `logs/…`). `datasets/` and `curated/` hold the users' images.
 */
export const reservedAreas = ['code', 'logs', 'models', 'workflows'];
/** Per-file errors kept on a job record (`progress.failed` counts them all). */
const maxStoredErrors = 1000;
/** What `#read` says of a key that no longer exists. */
const goneMessage = 'the file is gone';
/** Bytes read to tell an image's format (`sniffImageType` reads 32). */
const sniffBytes = 32;
/** Jobs whose servable images `openImage` keeps in memory (the most recently used). */
const maxCachedImageMaps = 16;

export interface CurationJobsOptions {
  store: IntelligenceStore;
  blobs: BlobStore;
  /** The bucket `s3://` URIs name: the S3 store's bucket, `savassan` for the file and memory stores. */
  bucket: string;
  embedder: Embedder;
  /** Of `embedder.dimensions`; a job's collection is its id. */
  vectors: VectorStore;
  logger?: Logger;
  /** Files read and embedded per batch (default 8); progress is written after each. */
  batchSize?: number;
  /** Jobs embedding at once (default 2); more wait their turn. */
  concurrency?: number;
  /** Files one job takes at most (default 10000). */
  maxImages?: number;
  sampling?: SamplingOptions;
  refine?: RefineOptions;
  /** How often `waitForChange` re-reads the store for writes by other processes (default 1000 ms). */
  pollMs?: number;
  now?: () => Date;
}

/** One file of a job: where it is, what it is called in errors and manifests, and its image id. */
interface JobFile {
  imageId: string;
  name: string;
  key: string;
}

/**
 * The data curator (`CurationService`): uploads into datasets, and curation jobs run in this process on the ports.
 * A job lists its files (an `s3://BUCKET/PREFIX` of the blob store, or a dataset's uploads), reads and embeds them in
 * bounded batches into the vector store (collection: the job id), writing progress after each batch with the
 * store's compare-and-set; then samples images for feedback (sampling.ts) and waits. Feedback with `complete`
 * refines the verdicts (refine.ts), copies the kept images to `curated/{datasetId}/images/` and writes the manifest.
 * A file that cannot be read or decoded is an `errors` entry; the job fails only when nothing could be embedded or a
 * backend failed. `resume()` picks up the jobs a stopped process left (embedding skips what the vector store holds).
 */
export class CurationJobs implements CurationService {
  readonly embedder: string;
  readonly bucket: string;
  readonly #options: Required<Omit<CurationJobsOptions, 'sampling' | 'refine' | 'logger'>> & {
    sampling: SamplingOptions;
    refine: RefineOptions;
  };
  readonly #logger: Logger;
  readonly #changes = new EventEmitter();
  /** Jobs running or waiting to run, by id. */
  readonly #running = new Map<string, Promise<void>>();
  /** Vectors being embedded again for jobs awaiting feedback whose vectors the store lost (a memory store). */
  readonly #restoring = new Map<string, Promise<void>>();
  /** Feedback being applied, by job id: one at a time per job. */
  readonly #feedback = new Map<string, Promise<unknown>>();
  /** The images `openImage` serves, by job id (image id → key), for the record revision they were read at. */
  readonly #imageMaps = new Map<string, { revision: number; keys: Map<string, string> }>();
  #slots: number;
  readonly #queue: (() => void)[] = [];
  readonly #abort = new AbortController();
  #closed = false;

  constructor(options: CurationJobsOptions) {
    if (options.vectors.dimensions !== options.embedder.dimensions) {
      throw new PlatformError(
        'INTERNAL',
        `the vector store holds ${options.vectors.dimensions}-dimensional vectors but embedder ` +
          `${options.embedder.id} makes ${options.embedder.dimensions}`,
      );
    }
    this.embedder = options.embedder.id;
    this.bucket = options.bucket;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'curator' });
    this.#options = {
      store: options.store,
      blobs: options.blobs,
      bucket: options.bucket,
      embedder: options.embedder,
      vectors: options.vectors,
      batchSize: positive(options.batchSize ?? 8, 'batchSize'),
      concurrency: positive(options.concurrency ?? 2, 'concurrency'),
      maxImages: positive(options.maxImages ?? 10_000, 'maxImages'),
      sampling: options.sampling ?? {},
      refine: options.refine ?? {},
      pollMs: positive(options.pollMs ?? 1000, 'pollMs'),
      now: options.now ?? (() => new Date()),
    };
    this.#slots = this.#options.concurrency;
    this.#changes.setMaxListeners(0);
  }

  // --- uploads -------------------------------------------------------------------------------------------------

  async addDatasetImage(
    datasetId: string,
    name: string,
    body: Readable,
    length: number,
  ): Promise<{ record: DatasetImageRecord; replaced: boolean }> {
    checkDatasetId(datasetId);
    if (!imageNamePattern.test(name)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `name must be 1-128 characters of letters, digits, ".", "_" and "-", not starting with ".", got ${JSON.stringify(name.slice(0, 200))}`,
      );
    }
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new PlatformError('BAD_REQUEST', 'the upload needs a Content-Length');
    }
    if (length > maxImageBytes) {
      throw new PlatformError('PAYLOAD_TOO_LARGE', `an image may be at most ${maxImageBytes} bytes (25 MiB)`);
    }
    const key = datasetRawKey(datasetId, name);
    const hash = createHash('sha256');
    let head = Buffer.alloc(0);
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        if (head.length < 32) head = Buffer.concat([head, chunk.subarray(0, 32 - head.length)]);
        done(null, chunk);
      },
    });
    body.once('error', (err) => tap.destroy(err));
    await this.#options.blobs.putStream(key, body.pipe(tap), length);
    const record: DatasetImageRecord = {
      datasetId,
      name,
      imageId: newId('img'),
      key,
      bytes: length,
      sha256: hash.digest('hex'),
      contentType: sniffImageType(head)?.contentType ?? 'application/octet-stream',
      createdAt: this.#options.now(),
    };
    const replaced = await this.#options.store.putDatasetImage(record);
    return { record, replaced: replaced !== null };
  }

  listDatasetImages(datasetId: string): Promise<DatasetImageRecord[]> {
    checkDatasetId(datasetId);
    return this.#options.store.listDatasetImages(datasetId);
  }

  // --- jobs ----------------------------------------------------------------------------------------------------

  async start(request: StartCurationRequest): Promise<CurationRecord> {
    this.#assertOpen();
    if (typeof request.projectId !== 'string' || !projectIdPattern.test(request.projectId)) {
      throw new PlatformError('BAD_REQUEST', 'projectId must be 1-128 characters of letters, digits, ".", "_" and "-"');
    }
    const source = this.#checkSource(request.source);
    if ('datasetId' in source && (await this.#options.store.listDatasetImages(source.datasetId)).length === 0) {
      throw new PlatformError('BAD_REQUEST', `dataset ${source.datasetId} has no images: upload some first`);
    }
    const now = this.#options.now();
    const record = await this.#options.store.putCuration(
      {
        id: newId('cur'),
        projectId: request.projectId,
        source,
        status: 'PENDING',
        progress: { total: 0, embedded: 0, failed: 0, duplicates: 0 },
        imagesForFeedback: [],
        feedback: {},
        curatedDatasetId: null,
        curatedDatasetUri: null,
        errors: [],
        failure: null,
        embedder: this.embedder,
        createdAt: now,
        updatedAt: now,
      },
      null,
    );
    if (record === null) throw new PlatformError('INTERNAL', 'a new curation id was taken');
    this.#changed(record);
    this.#schedule(record.id);
    return record;
  }

  get(id: string): Promise<CurationRecord | null> {
    return this.#options.store.getCuration(id);
  }

  /**
   * Pick up the jobs a stopped process left: embedding ones run again, skipping what the vector store holds; jobs
   * awaiting feedback whose vectors are gone (a vector store in memory) have their images embedded again.
   */
  async resume(): Promise<void> {
    for (const record of await this.#options.store.listActiveCurations()) {
      if (record.status === 'PENDING' || record.status === 'EMBEDDING') {
        this.#schedule(record.id);
      } else if (
        record.status === 'AWAITING_FEEDBACK' &&
        record.embedder === this.embedder &&
        record.progress.embedded > 0 &&
        (await this.#options.vectors.count(record.id)) === 0 &&
        !this.#restoring.has(record.id)
      ) {
        const restore = this.#restore(record).catch((err: unknown) => {
          this.#logger.warn({ err, curationId: record.id }, 'cannot embed the images of a curation again');
        });
        this.#restoring.set(record.id, restore);
      }
    }
  }

  /** Embed a job's files again into the vector store (the record is left as it is). */
  async #restore(record: CurationRecord): Promise<void> {
    const failed = new Set(record.errors.map((error) => error.file));
    const files = (await this.#files(record)).filter((file) => !failed.has(file.name));
    for (let at = 0; at < files.length && !this.#closed; at += this.#options.batchSize) {
      await this.#embedBatch(record.id, files.slice(at, at + this.#options.batchSize));
    }
  }

  async submitFeedback(id: string, feedback: readonly Verdict[], complete: boolean): Promise<CurationRecord> {
    this.#assertOpen();
    // Each verdict is spread over the whole collection when the job completes: bounded so that one call cannot hold
    // the process's event loop for long.
    if (feedback.length > maxVerdicts) {
      throw new PlatformError(
        'BAD_REQUEST',
        `feedback: at most ${maxVerdicts} verdicts a call, got ${feedback.length}`,
      );
    }
    // One feedback call per job at a time, so that two completions never write two datasets.
    const previous = this.#feedback.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.#applyFeedback(id, feedback, complete));
    this.#feedback.set(id, next);
    try {
      return await next;
    } finally {
      if (this.#feedback.get(id) === next) this.#feedback.delete(id);
    }
  }

  /**
   * One of the job's embedded images: one offered for feedback, or one of its curated dataset once COMPLETED.
   * Streamed from the blob store; null when the job has no such image or its bytes do not start like an image.
   */
  async openImage(id: string, imageId: string): Promise<{ body: Readable; contentType: string } | null> {
    const record = await this.#options.store.getCuration(id);
    if (record === null) return null;
    const key = (await this.#servableImages(record)).get(imageId);
    if (key === undefined) return null;
    const opened = await this.#options.blobs.getStream(key);
    if (opened === null) return null;
    const stream: Readable = opened;
    const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let size = 0;
    try {
      while (size < sniffBytes) {
        const next = await chunks.next();
        if (next.done === true) break;
        head.push(next.value);
        size += next.value.length;
      }
    } catch (err) {
      stream.destroy();
      throw err;
    }
    const type = sniffImageType(Buffer.concat(head));
    if (type === null || size > maxImageBytes) {
      stream.destroy();
      return null;
    }
    async function* rest(): AsyncGenerator<Buffer> {
      yield* head;
      for (;;) {
        const next = await chunks.next();
        if (next.done === true) return;
        size += next.value.length;
        if (size > maxImageBytes) throw new Error(`the image grew over ${maxImageBytes} bytes while served`);
        yield next.value;
      }
    }
    const body = Readable.from(rest());
    // However the body ends (read out, failed, destroyed unread), the blob's stream is closed.
    body.once('close', () => stream.destroy());
    return { body, contentType: type.contentType };
  }

  /** Image id → key of the images `openImage` serves for `record`, kept for its revision (bounded, by recency). */
  async #servableImages(record: CurationRecord): Promise<Map<string, string>> {
    const cached = this.#imageMaps.get(record.id);
    if (cached !== undefined && cached.revision === record.revision) {
      this.#imageMaps.delete(record.id);
      this.#imageMaps.set(record.id, cached);
      return cached.keys;
    }
    const keys = new Map<string, string>();
    for (const image of record.imagesForFeedback) {
      const key = this.#keyOfOwnUri(image.uri);
      if (key !== null) keys.set(image.imageId, key);
    }
    if (record.status === 'COMPLETED' && record.curatedDatasetId !== null) {
      const manifest = await this.#options.blobs.get(`curated/${record.curatedDatasetId}/manifest.json`);
      if (manifest !== null) {
        for (const image of (JSON.parse(manifest.toString('utf8')) as CurationManifest).images) {
          const key = this.#keyOfOwnUri(image.uri);
          if (key !== null) keys.set(image.imageId, key);
        }
      }
    }
    this.#imageMaps.delete(record.id);
    this.#imageMaps.set(record.id, { revision: record.revision, keys });
    while (this.#imageMaps.size > maxCachedImageMaps) {
      this.#imageMaps.delete(this.#imageMaps.keys().next().value!);
    }
    return keys;
  }

  async waitForChange(id: string, revision: number, signal: AbortSignal): Promise<CurationRecord | null> {
    for (;;) {
      if (signal.aborted) return null;
      const record = await this.#options.store.getCuration(id);
      if (record === null) return null;
      if (record.revision > revision) return record;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#changes.off(id, done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, this.#options.pollMs);
        this.#changes.on(id, done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Stop running jobs (they resume on the next start) and wait for them. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    for (const release of this.#queue.splice(0)) release();
    await Promise.allSettled([...this.#running.values(), ...this.#feedback.values(), ...this.#restoring.values()]);
  }

  // --- the job -------------------------------------------------------------------------------------------------

  #schedule(id: string): void {
    if (this.#running.has(id) || this.#closed) return;
    const run = (async () => {
      await this.#slot();
      try {
        if (!this.#closed) await this.#run(id);
      } catch (err) {
        this.#logger.error({ err, curationId: id }, 'curation job failed unexpectedly');
      } finally {
        this.#slots++;
        this.#queue.shift()?.();
        this.#running.delete(id);
      }
    })();
    this.#running.set(id, run);
  }

  #slot(): Promise<void> {
    if (this.#slots > 0) {
      this.#slots--;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.#queue.push(() => {
        this.#slots--;
        resolve();
      }),
    );
  }

  async #run(id: string): Promise<void> {
    let record = await this.#options.store.getCuration(id);
    if (record === null || (record.status !== 'PENDING' && record.status !== 'EMBEDDING')) return;
    if (record.embedder !== this.embedder) {
      await this.#write(record, { status: 'FAILED', failure: embedderMismatch(record.embedder, this.embedder) });
      return;
    }
    try {
      const files = await this.#files(record);
      if (files.length === 0) {
        await this.#write(record, { status: 'FAILED', failure: `no files in ${describeSource(record.source)}` });
        return;
      }
      if (files.length > this.#options.maxImages) {
        await this.#write(record, {
          status: 'FAILED',
          failure: `${files.length} files in ${describeSource(record.source)}: a job takes at most ${this.#options.maxImages}`,
        });
        return;
      }
      const stored = await part('the vector store', () => this.#options.vectors.list(id));
      const held = new Set(stored.map((vector) => vector.id));
      const failedNames = new Set(record.errors.map((error) => error.file));
      const errors = [...record.errors];
      let failed = record.progress.failed;
      const progress = () => ({
        total: files.length,
        embedded: held.size,
        failed,
        duplicates: 0,
      });
      const next = await this.#write(record, { status: 'EMBEDDING', progress: progress() });
      if (next === null) return;
      record = next;
      const todo = files.filter((file) => !held.has(file.imageId) && !failedNames.has(file.name));
      for (let at = 0; at < todo.length; at += this.#options.batchSize) {
        if (this.#closed) return;
        const batch = todo.slice(at, at + this.#options.batchSize);
        const outcome = await this.#embedBatch(id, batch);
        for (const embedded of outcome.embedded) held.add(embedded);
        for (const error of outcome.errors) {
          failed++;
          if (errors.length < maxStoredErrors) errors.push(error);
        }
        const written = await this.#write(record, { progress: progress(), errors });
        if (written === null) return;
        record = written;
      }
      await this.#sample(record, files);
    } catch (err) {
      if (this.#closed) return;
      // A backend's message may name hosts, paths or queries: the record (which API callers read) says only which
      // part failed, the log has the details.
      const failure =
        err instanceof PartFailed
          ? `${err.part} failed (details in the server's log)`
          : err instanceof PlatformError && (err.code === 'BAD_REQUEST' || err.code === 'CONFLICT')
            ? err.message
            : "the job failed unexpectedly (details in the server's log)";
      const detail = err instanceof PartFailed ? err.cause : err;
      this.#logger.warn({ err: detail, curationId: id, failure }, 'curation job failed');
      const current = await this.#options.store.getCuration(id);
      // PENDING too: a job can fail before its first write (listing its files, reading the vectors kept so far).
      if (current !== null && (current.status === 'PENDING' || current.status === 'EMBEDDING')) {
        await this.#write(current, { status: 'FAILED', failure });
      }
    }
  }

  /** Read a batch of files and embed them; a backend failure (blob store, embedder, vector store) throws. */
  async #embedBatch(
    collection: string,
    batch: readonly JobFile[],
  ): Promise<{ embedded: string[]; errors: CurationFileError[] }> {
    const errors: CurationFileError[] = [];
    const readable: { file: JobFile; bytes: Buffer }[] = [];
    for (const file of batch) {
      const bytes = await part('reading the images', () => this.#read(file.key));
      if (typeof bytes === 'string') errors.push({ file: file.name, message: bytes });
      else readable.push({ file, bytes });
    }
    const results =
      readable.length === 0
        ? []
        : await part('the embedder', () => this.#options.embedder.embed(readable.map((r) => r.bytes)));
    const vectors: StoredVector[] = [];
    for (const [i, { file }] of readable.entries()) {
      const result = results[i];
      if (result === undefined) errors.push({ file: file.name, message: 'the embedder returned no result' });
      else if ('error' in result) errors.push({ file: file.name, message: result.error });
      else vectors.push({ id: file.imageId, uri: this.#uri(file.key), vector: result.vector });
    }
    if (vectors.length > 0) await part('the vector store', () => this.#options.vectors.upsert(collection, vectors));
    return { embedded: vectors.map((v) => v.id), errors };
  }

  /** The file's bytes, or why they cannot be had (a string): gone, or over the size limit. */
  async #read(key: string): Promise<Buffer | string> {
    const stream = await this.#options.blobs.getStream(key);
    if (stream === null) return goneMessage;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxImageBytes) {
        stream.destroy();
        return `the file is larger than ${maxImageBytes} bytes (25 MiB)`;
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  async #sample(record: CurationRecord, files: readonly JobFile[]): Promise<void> {
    const items = await part('the vector store', () => this.#items(record));
    if (items.length === 0) {
      await this.#write(record, {
        status: 'FAILED',
        failure: `nothing could be embedded: all ${files.length} files failed (see errors)`,
      });
      return;
    }
    const sample = await sampleForFeedback(items, this.#options.sampling);
    const uris = new Map(files.map((file) => [file.imageId, this.#uri(file.key)]));
    await this.#write(record, {
      status: 'AWAITING_FEEDBACK',
      progress: { ...record.progress, duplicates: sample.duplicates.length },
      imagesForFeedback: sample.feedback.map((f) => ({ ...f, uri: uris.get(f.imageId) ?? '' })),
    });
  }

  /** The job's embedded images as sampling takes them (named as in errors and manifests). */
  async #items(record: CurationRecord): Promise<(SampleItem & { key: string })[]> {
    const stored = await this.#options.vectors.list(record.id);
    return stored.map((vector) => {
      const key = this.#keyOfUri(vector.uri);
      return { id: vector.id, name: nameOf(record.source, key), key, vector: vector.vector };
    });
  }

  async #applyFeedback(id: string, verdicts: readonly Verdict[], complete: boolean): Promise<CurationRecord> {
    await this.#restoring.get(id);
    const record = await this.#options.store.getCuration(id);
    if (record === null) throw new PlatformError('NOT_FOUND', `curation ${id} does not exist`);
    if (record.status !== 'AWAITING_FEEDBACK') {
      throw new PlatformError(
        'CONFLICT',
        `curation ${id} is ${record.status}: feedback is taken only while it is AWAITING_FEEDBACK`,
      );
    }
    if (record.embedder !== this.embedder) {
      throw new PlatformError('CONFLICT', embedderMismatch(record.embedder, this.embedder));
    }
    const items = await this.#items(record);
    const known = new Set(items.map((item) => item.id));
    for (const verdict of verdicts) {
      if (!known.has(verdict.imageId)) {
        throw new PlatformError('BAD_REQUEST', `image ${verdict.imageId} is not an image of curation ${id}`);
      }
    }
    const feedback = { ...record.feedback };
    for (const verdict of verdicts) feedback[verdict.imageId] = verdict.accepted;
    if (!complete) {
      const written = await this.#write(record, { feedback });
      if (written === null) throw new PlatformError('CONFLICT', `curation ${id} changed meanwhile: try again`);
      return written;
    }
    const datasetId = newId('ds');
    const { manifest, errors } = await this.#writeDataset(record, items, feedback, datasetId);
    const written = await this.#write(record, {
      status: 'COMPLETED',
      feedback,
      errors: [...record.errors, ...errors].slice(0, maxStoredErrors),
      progress: { ...record.progress, failed: record.progress.failed + errors.length },
      curatedDatasetId: datasetId,
      curatedDatasetUri: this.#uri(`curated/${datasetId}/`),
    });
    if (written === null) throw new PlatformError('CONFLICT', `curation ${id} changed meanwhile: try again`);
    this.#logger.info(
      { curationId: id, datasetId, images: manifest.images.length, excluded: manifest.excluded.length },
      'curated dataset written',
    );
    return written;
  }

  async #writeDataset(
    record: CurationRecord,
    items: readonly (SampleItem & { key: string })[],
    feedback: Record<string, boolean>,
    datasetId: string,
  ): Promise<{ manifest: CurationManifest; errors: CurationFileError[] }> {
    const sample = await sampleForFeedback(items, this.#options.sampling);
    const verdicts = new Map(Object.entries(feedback));
    const labels = refine(sample.kept, verdicts, this.#options.refine);
    const byId = new Map(items.map((item) => [item.id, item]));
    const images: CuratedImage[] = [];
    const excluded: CurationManifest['excluded'] = sample.duplicates.map((d) => ({
      imageId: d.id,
      source: d.name,
      reason: 'duplicate' as const,
    }));
    const copies: { item: SampleItem & { key: string }; label: CuratedImage['label'] }[] = [];
    for (const item of sample.kept) {
      const label = labels.get(item.id) ?? 'kept';
      if (label === 'rejected' || label === 'neighbour-rejected') {
        excluded.push({ imageId: item.id, source: item.name, reason: label });
      } else {
        copies.push({ item: byId.get(item.id)!, label });
      }
    }
    const prefix = `curated/${datasetId}/`;
    const errors: CurationFileError[] = [];
    for (let at = 0; at < copies.length; at += this.#options.batchSize) {
      const batch = copies.slice(at, at + this.#options.batchSize);
      const copied = await Promise.all(
        batch.map(async ({ item, label }) => {
          // Read with the upload cap: the file may have been replaced by a larger one since it was embedded.
          const bytes = await this.#read(item.key);
          if (bytes === goneMessage) {
            throw new PlatformError('CONFLICT', `file ${item.name} is gone from the blob store: it cannot be curated`);
          }
          if (typeof bytes === 'string') {
            errors.push({ file: item.name, message: `${bytes}: left out of the curated dataset` });
            return null;
          }
          const key = `${prefix}images/${item.id}${sniffImageType(bytes)?.extension ?? ''}`;
          await this.#options.blobs.put(key, bytes);
          return {
            imageId: item.id,
            uri: this.#uri(key),
            source: item.name,
            label,
            cluster: sample.clusterOf.get(item.id)!,
          };
        }),
      );
      for (const image of copied) if (image !== null) images.push(image);
    }
    const manifest: CurationManifest = {
      datasetId,
      curationId: record.id,
      projectId: record.projectId,
      createdAt: this.#options.now().toISOString(),
      embedder: record.embedder,
      dimensions: this.#options.embedder.dimensions,
      images,
      excluded,
    };
    await this.#options.blobs.put(`${prefix}manifest.json`, JSON.stringify(manifest, null, 2));
    return { manifest, errors };
  }

  // --- records, sources ----------------------------------------------------------------------------------------

  /** Write `changes` over `record` with its revision; null (logged) when another write came first. */
  async #write(
    record: CurationRecord,
    changes: Partial<Omit<CurationRecord, 'revision'>>,
  ): Promise<CurationRecord | null> {
    const { revision, ...rest } = record;
    const written = await this.#options.store.putCuration(
      { ...rest, ...changes, updatedAt: this.#options.now() },
      revision,
    );
    if (written === null) {
      this.#logger.warn({ curationId: record.id }, 'curation changed under this writer; it stops here');
      return null;
    }
    this.#changed(written);
    return written;
  }

  #changed(record: CurationRecord): void {
    this.#changes.emit(record.id);
  }

  async #files(record: CurationRecord): Promise<JobFile[]> {
    const source = record.source;
    if ('datasetId' in source) {
      const images = await part('the intelligence store', () =>
        this.#options.store.listDatasetImages(source.datasetId),
      );
      return images.map((image) => ({ imageId: image.imageId, name: image.name, key: image.key }));
    }
    const prefix = this.#prefixOf(source.rawDataUri);
    const keys = await part('listing the files', () => this.#options.blobs.list(prefix));
    return keys.map((key) => ({ imageId: rawImageId(record.id, key), name: key.slice(prefix.length), key }));
  }

  #checkSource(source: CurationSource): CurationSource {
    const raw = 'rawDataUri' in source ? source.rawDataUri : undefined;
    const dataset = 'datasetId' in source ? source.datasetId : undefined;
    if ((raw === undefined) === (dataset === undefined)) {
      throw new PlatformError('BAD_REQUEST', 'give exactly one of rawDataUri and datasetId');
    }
    if (dataset !== undefined) {
      checkDatasetId(dataset);
      return { datasetId: dataset };
    }
    this.#prefixOf(raw!);
    return { rawDataUri: raw! };
  }

  /** The blob prefix of an `s3://BUCKET/PREFIX` URI of this platform's bucket; BAD_REQUEST otherwise. */
  #prefixOf(uri: string): string {
    const allowed = `s3://${this.#options.bucket}/`;
    const match = typeof uri === 'string' ? /^s3:\/\/([^/]+)\/(.*)$/.exec(uri) : null;
    if (match === null) {
      throw new PlatformError('BAD_REQUEST', `rawDataUri must look like ${allowed}PREFIX, got ${JSON.stringify(uri)}`);
    }
    if (match[1] !== this.#options.bucket) {
      throw new PlatformError(
        'BAD_REQUEST',
        `rawDataUri names bucket ${match[1]}: the curator reads only this platform's bucket, ${this.#options.bucket} (${allowed}PREFIX)`,
      );
    }
    const prefix = match[2]!;
    // The first segment, whole when a `/` follows it; else partial, and then it may not begin any reserved name.
    const slash = prefix.indexOf('/');
    const first = slash === -1 ? prefix : prefix.slice(0, slash);
    if (slash === -1 ? reservedAreas.some((area) => area.startsWith(first)) : reservedAreas.includes(first)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `rawDataUri needs a prefix of your data: not the whole bucket, nor the platform's own ` +
          `${reservedAreas.map((area) => `${area}/`).join(', ')} nor a beginning of their names, ` +
          `got ${JSON.stringify(prefix.slice(0, 200))}`,
      );
    }
    try {
      parseBlobPrefix(prefix);
    } catch (err) {
      throw new PlatformError(
        'BAD_REQUEST',
        `rawDataUri's prefix ${JSON.stringify(prefix)} is not a valid key prefix`,
        {
          cause: err,
        },
      );
    }
    return prefix;
  }

  #uri(key: string): string {
    return `s3://${this.#options.bucket}/${key}`;
  }

  /** The key of an `s3://` URI of this platform's bucket, or null. */
  #keyOfOwnUri(uri: string): string | null {
    const base = `s3://${this.#options.bucket}/`;
    return uri.startsWith(base) ? uri.slice(base.length) : null;
  }

  #keyOfUri(uri: string): string {
    const base = `s3://${this.#options.bucket}/`;
    if (!uri.startsWith(base))
      throw new PlatformError('INTERNAL', `stored image uri ${uri} is not of bucket ${this.#options.bucket}`);
    return uri.slice(base.length);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'the curator is closed');
  }
}

function checkDatasetId(datasetId: string): void {
  if (typeof datasetId !== 'string' || !datasetIdPattern.test(datasetId)) {
    throw new PlatformError(
      'BAD_REQUEST',
      'datasetId must be 1-63 lowercase letters, digits and "-", starting with a letter or digit',
    );
  }
}

function datasetRawKey(datasetId: string, name: string): string {
  return `datasets/${datasetId}/raw/${name}`;
}

/** A file's name as errors and manifests show it: its upload name, or its key under the raw prefix. */
function nameOf(source: CurationSource, key: string): string {
  if ('datasetId' in source) return key.slice(datasetRawKey(source.datasetId, '').length);
  const prefix = /^s3:\/\/[^/]+\/(.*)$/.exec(source.rawDataUri)?.[1] ?? '';
  return key.startsWith(prefix) ? key.slice(prefix.length) : key;
}

function describeSource(source: CurationSource): string {
  return 'datasetId' in source ? `dataset ${source.datasetId}` : source.rawDataUri;
}

const base32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** A raw file's image id: the same for the same job and key (a resumed job finds its vectors again). */
function rawImageId(curationId: string, key: string): string {
  const digest = createHash('sha256').update(`${curationId}\0${key}`).digest();
  let id = 'img-';
  for (let i = 0; i < 26; i++) id += base32[digest[i]! & 31];
  return id;
}

/** A backend call of a job failed: `part` names it for the job's record, `cause` holds the details for the log. */
class PartFailed extends Error {
  constructor(
    readonly part: string,
    cause: unknown,
  ) {
    super(`${part} failed`, { cause });
  }
}

/** Run a backend call, its failure a PartFailed naming `name`. */
async function part<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw new PartFailed(name, err);
  }
}

function embedderMismatch(recorded: string, current: string): string {
  return `the job was started with embedder ${recorded}; this platform now embeds with ${current}: start a new job`;
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new PlatformError('BAD_REQUEST', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** The curator on its ports (`CurationService`); call `resume()` once the platform is up, `close()` at shutdown. */
export function createCurationService(options: CurationJobsOptions): CurationJobs {
  return new CurationJobs(options);
}
