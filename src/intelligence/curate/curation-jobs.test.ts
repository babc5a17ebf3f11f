// The curator's jobs end to end on real components: the file blob store, the pixels embedder (sharp), the exact
// vector store, and the memory and SQLite intelligence stores.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';

import { existsSync } from 'node:fs';
import { FsBlobStore } from '../../adapters/fs/fs-blob-store.js';
import { createOnnxEmbedder } from '../../adapters/onnx/onnx-embedder.js';
import { createPgliteVectorStore } from '../../adapters/pglite/pglite-vector-store.js';
import { PixelEmbedder } from '../../adapters/images/pixel-embedder.js';
import { MemoryIntelligenceStore } from '../../adapters/memory/memory-intelligence-store.js';
import { MemoryVectorStore } from '../../adapters/memory/memory-vector-store.js';
import { SqlIntelligenceStore } from '../../adapters/sql/sql-intelligence-store.js';
import { openSqliteMetadataStore } from '../../adapters/sqlite/sqlite-metadata-store.js';
import type { CurationManifest, CurationStatus } from '../../core/curation.js';
import { PlatformError } from '../../core/errors.js';
import type { Embedder } from '../../core/ports/embedder.js';
import type { CurationRecord, IntelligenceStore } from '../../core/ports/intelligence-store.js';
import type { VectorStore } from '../../core/ports/vector-store.js';
import { syntheticImages, type SyntheticImage } from '../../../test/helpers/synthetic-images.js';
import { CurationJobs, maxImageBytes } from './curation-jobs.js';

let dir = '';
let images: SyntheticImage[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'savassan-curate-'));
  images = await syntheticImages({ perCluster: 6 });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function rig(
  name: string,
  store: IntelligenceStore = new MemoryIntelligenceStore(),
  overrides: { embedder?: Embedder; vectors?: VectorStore } = {},
) {
  const blobs = new FsBlobStore(join(dir, name));
  const embedder = overrides.embedder ?? new PixelEmbedder();
  const vectors = overrides.vectors ?? new MemoryVectorStore(embedder.dimensions);
  const jobs = new CurationJobs({ store, blobs, bucket: 'savassan', embedder, vectors, batchSize: 5, pollMs: 50 });
  return { blobs, store, vectors, embedder, jobs };
}

async function upload(jobs: CurationJobs, datasetId: string, set: readonly SyntheticImage[]): Promise<void> {
  for (const image of set)
    await jobs.addDatasetImage(datasetId, image.name, Readable.from([image.bytes]), image.bytes.length);
}

/** Every status the job shows until it stops changing at `until` (or a terminal one), in order, repeats folded. */
async function follow(
  jobs: CurationJobs,
  first: CurationRecord,
  until: CurationStatus,
): Promise<{ statuses: CurationStatus[]; record: CurationRecord }> {
  const statuses: CurationStatus[] = [first.status];
  let record = first;
  while (record.status !== until && record.status !== 'FAILED' && record.status !== 'COMPLETED') {
    const next = await jobs.waitForChange(record.id, record.revision, AbortSignal.timeout(60_000));
    assert.ok(next !== null, 'the job stopped changing');
    record = next;
    if (statuses.at(-1) !== record.status) statuses.push(record.status);
  }
  return { statuses, record };
}

const modelPath = join(import.meta.dirname, '../../../../shared/models/mobilenetv2-12-int8.onnx');

/** Run a dataset job to AWAITING_FEEDBACK, accept the first image offered, complete it: the manifest. */
async function curateOnce(
  name: string,
  overrides: { embedder: Embedder; vectors: VectorStore },
): Promise<{ record: CurationRecord; manifest: CurationManifest }> {
  const { jobs, blobs } = rig(name, new MemoryIntelligenceStore(), overrides);
  await upload(jobs, 'shapes', images);
  const { record } = await follow(
    jobs,
    await jobs.start({ projectId: 'p', source: { datasetId: 'shapes' } }),
    'AWAITING_FEEDBACK',
  );
  assert.equal(record.status, 'AWAITING_FEEDBACK', record.failure ?? '');
  assert.equal(record.progress.failed, 3);
  assert.equal(record.progress.embedded, images.length - 3);
  const done = await jobs.submitFeedback(
    record.id,
    [{ imageId: record.imagesForFeedback[0]!.imageId, accepted: true }],
    true,
  );
  assert.equal(done.status, 'COMPLETED');
  const manifest = JSON.parse(
    (await blobs.get(`curated/${done.curatedDatasetId}/manifest.json`))!.toString(),
  ) as CurationManifest;
  await jobs.close();
  await overrides.vectors.close();
  await overrides.embedder.close();
  return { record, manifest };
}

const isCode = (code: string) => (err: unknown) => err instanceof PlatformError && err.code === code;

describe('curation jobs', () => {
  it('runs a dataset job: embedding, per-file errors, feedback sample, refinement, the curated dataset', async () => {
    const { jobs, blobs } = rig('dataset');
    await upload(jobs, 'shapes', images);
    const listed = await jobs.listDatasetImages('shapes');
    assert.deepEqual(
      listed.map((i) => i.name),
      images.map((i) => i.name),
    );
    assert.equal(listed.find((i) => i.name.endsWith('.png') && i.name.startsWith('c0'))!.contentType, 'image/png');
    assert.equal(listed.find((i) => i.name === 'readme.txt')!.contentType, 'application/octet-stream');

    const started = await jobs.start({ projectId: 'proj-1', source: { datasetId: 'shapes' } });
    assert.equal(started.status, 'PENDING');
    assert.equal(started.embedder, 'pixels-v1');
    const { statuses, record } = await follow(jobs, started, 'AWAITING_FEEDBACK');
    assert.deepEqual(statuses, ['PENDING', 'EMBEDDING', 'AWAITING_FEEDBACK']);
    const bad = images.filter((i) => i.kind === 'corrupt' || i.kind === 'not-image');
    const duplicates = images.filter((i) => i.kind === 'duplicate');
    assert.deepEqual(record.progress, {
      total: images.length,
      embedded: images.length - bad.length,
      failed: bad.length,
      duplicates: duplicates.length,
    });
    assert.deepEqual(
      record.errors.map((e) => e.file).sort(),
      bad.map((i) => i.name),
    );
    assert.match(record.errors.find((e) => e.file === 'readme.txt')!.message, /not an image/);
    const nameOf = new Map(listed.map((i) => [i.imageId, i.name]));
    const offered = record.imagesForFeedback;
    assert.ok(offered.length > 0 && offered.length <= 24);
    for (const image of offered) {
      assert.equal(image.uri, `s3://savassan/datasets/shapes/raw/${nameOf.get(image.imageId)}`);
      assert.ok(!nameOf.get(image.imageId)!.includes('.reencoded') && !nameOf.get(image.imageId)!.includes('.shifted'));
    }
    const opened = await jobs.openImage(record.id, offered[0]!.imageId);
    assert.ok(opened !== null);
    assert.match(opened.contentType, /^image\/(png|jpeg)$/);
    opened.body.destroy();
    assert.equal(await jobs.openImage(record.id, 'img-unknown'), null);

    // Verdicts: the red discs' medoid accepted, the blue squares' rejected.
    const synthetic = (imageId: string) => images.find((i) => i.name === nameOf.get(imageId))!;
    const medoids = offered.filter((i) => i.reason === 'cluster');
    const red = medoids.find((i) => synthetic(i.imageId).cluster === 0)!;
    const blue = medoids.find((i) => synthetic(i.imageId).cluster === 1)!;
    await assert.rejects(
      jobs.submitFeedback(
        record.id,
        [
          { imageId: red.imageId, accepted: true },
          { imageId: 'img-nope', accepted: true },
        ],
        true,
      ),
      isCode('BAD_REQUEST'),
    );
    assert.deepEqual((await jobs.get(record.id))!.feedback, {}, 'nothing applied');
    const partial = await jobs.submitFeedback(record.id, [{ imageId: red.imageId, accepted: false }], false);
    assert.equal(partial.status, 'AWAITING_FEEDBACK');
    assert.deepEqual(partial.feedback, { [red.imageId]: false });
    const done = await jobs.submitFeedback(
      record.id,
      [
        { imageId: red.imageId, accepted: true },
        { imageId: blue.imageId, accepted: false },
      ],
      true,
    );
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(done.feedback, { [red.imageId]: true, [blue.imageId]: false });
    assert.match(done.curatedDatasetId!, /^ds-[a-z2-7]{26}$/);
    assert.equal(done.curatedDatasetUri, `s3://savassan/curated/${done.curatedDatasetId}/`);
    await assert.rejects(jobs.submitFeedback(record.id, [], true), isCode('CONFLICT'));

    const manifest = JSON.parse(
      (await blobs.get(`curated/${done.curatedDatasetId}/manifest.json`))!.toString(),
    ) as CurationManifest;
    assert.equal(manifest.curationId, record.id);
    assert.equal(manifest.projectId, 'proj-1');
    assert.equal(manifest.embedder, 'pixels-v1');
    assert.equal(manifest.dimensions, 256);
    const label = (name: string) => manifest.images.find((i) => i.source === name)?.label;
    const reason = (name: string) => manifest.excluded.find((i) => i.source === name)?.reason;
    assert.equal(label(nameOf.get(red.imageId)!), 'accepted');
    assert.equal(reason(nameOf.get(blue.imageId)!), 'rejected');
    for (const d of duplicates) assert.equal(reason(d.name), 'duplicate');
    for (const image of images.filter((i) => i.kind === 'base' && i.cluster === 2))
      assert.equal(label(image.name), 'kept');
    assert.equal(manifest.images.length + manifest.excluded.length, images.length - bad.length);
    for (const image of manifest.images) {
      const key = image.uri.slice('s3://savassan/'.length);
      assert.ok(key.startsWith(`curated/${done.curatedDatasetId}/images/${image.imageId}.`));
      assert.deepEqual(await blobs.get(key), images.find((i) => i.name === image.source)!.bytes);
    }
    await jobs.close();
  });

  it('reads an s3:// prefix of the platform bucket, and refuses other buckets and bad requests', async () => {
    const { jobs, blobs } = rig('raw');
    for (const image of images) await blobs.put(`incoming/set-1/${image.name}`, image.bytes);
    await blobs.put('incoming/other.png', images[0]!.bytes);
    const started = await jobs.start({ projectId: 'p', source: { rawDataUri: 's3://savassan/incoming/set-1/' } });
    const { record } = await follow(jobs, started, 'AWAITING_FEEDBACK');
    assert.equal(record.status, 'AWAITING_FEEDBACK');
    assert.equal(record.progress.total, images.length);
    assert.ok(record.errors.some((e) => e.file === 'broken-garbled.png'));
    assert.ok(record.imagesForFeedback.every((i) => i.uri.startsWith('s3://savassan/incoming/set-1/')));
    const first = record.imagesForFeedback[0]!;
    const opened = await jobs.openImage(record.id, first.imageId);
    assert.ok(opened !== null);
    assert.deepEqual(
      Buffer.concat(await opened.body.toArray()),
      await blobs.get(first.uri.slice('s3://savassan/'.length)),
    );

    await assert.rejects(
      jobs.start({ projectId: 'p', source: { rawDataUri: 's3://elsewhere/x/' } }),
      (err: unknown) => isCode('BAD_REQUEST')(err) && /savassan/.test((err as Error).message),
    );
    for (const rawDataUri of ['https://x/y', 's3://savassan/', 's3://savassan/code/', 's3://savassan/a/../b']) {
      await assert.rejects(jobs.start({ projectId: 'p', source: { rawDataUri } }), isCode('BAD_REQUEST'), rawDataUri);
    }
    await assert.rejects(
      jobs.start({ projectId: 'p', source: { rawDataUri: 's3://savassan/x/', datasetId: 'd' } }),
      isCode('BAD_REQUEST'),
    );
    await assert.rejects(jobs.start({ projectId: 'p', source: {} as never }), isCode('BAD_REQUEST'));
    await assert.rejects(jobs.start({ projectId: 'bad id', source: { datasetId: 'd' } }), isCode('BAD_REQUEST'));
    await assert.rejects(jobs.start({ projectId: 'p', source: { datasetId: 'empty' } }), isCode('BAD_REQUEST'));
    await assert.rejects(jobs.addDatasetImage('d', '.hidden', Readable.from([]), 0), isCode('BAD_REQUEST'));
    await assert.rejects(
      jobs.addDatasetImage('d', 'big.png', Readable.from([]), maxImageBytes + 1),
      isCode('PAYLOAD_TOO_LARGE'),
    );
    await jobs.close();
  });

  it('fails a job with nothing to embed, or with no files, saying why', async () => {
    const { jobs, blobs } = rig('failing');
    for (const image of images.filter((i) => i.kind === 'corrupt' || i.kind === 'not-image')) {
      await blobs.put(`junk/${image.name}`, image.bytes);
    }
    const junk = await follow(
      jobs,
      await jobs.start({ projectId: 'p', source: { rawDataUri: 's3://savassan/junk/' } }),
      'FAILED',
    );
    assert.equal(junk.record.status, 'FAILED');
    assert.match(junk.record.failure!, /nothing could be embedded/);
    assert.equal(junk.record.errors.length, 3);
    const none = await follow(
      jobs,
      await jobs.start({ projectId: 'p', source: { rawDataUri: 's3://savassan/void/' } }),
      'FAILED',
    );
    assert.deepEqual([none.statuses, none.record.failure], [['PENDING', 'FAILED'], 'no files in s3://savassan/void/']);
    await jobs.close();
  });

  it("fails a job whose backend fails as a whole, naming the part that failed but not the backend's message", async () => {
    const broken: Embedder = {
      id: 'pixels-v1',
      dimensions: 256,
      embed: () => Promise.reject(new PlatformError('UNAVAILABLE', 'the model server at 10.0.0.7:9000 is down')),
      close: () => Promise.resolve(),
    };
    const { jobs } = rig('broken', new MemoryIntelligenceStore(), { embedder: broken });
    await upload(jobs, 'one', images.slice(0, 2));
    const { record } = await follow(jobs, await jobs.start({ projectId: 'p', source: { datasetId: 'one' } }), 'FAILED');
    assert.equal(record.status, 'FAILED');
    assert.equal(record.failure, "the embedder failed (details in the server's log)");
    await jobs.close();

    // A vector store whose driver fails with a message naming its connection.
    class FailingVectors extends MemoryVectorStore {
      override upsert(): Promise<void> {
        return Promise.reject(new Error('connect ECONNREFUSED postgres://curator:hunter2@db.internal:5432/vectors'));
      }
    }
    const failing = rig('broken-vectors', new MemoryIntelligenceStore(), { vectors: new FailingVectors(256) });
    await upload(failing.jobs, 'one', images.filter((i) => i.kind === 'base').slice(0, 2));
    const stopped = await follow(
      failing.jobs,
      await failing.jobs.start({ projectId: 'p', source: { datasetId: 'one' } }),
      'FAILED',
    );
    assert.equal(stopped.record.status, 'FAILED');
    assert.equal(stopped.record.failure, "the vector store failed (details in the server's log)");
    await failing.jobs.close();

    // A failure before the job's first write (reading the vectors kept so far) ends it too: never PENDING forever.
    class UnreadableVectors extends MemoryVectorStore {
      override list(): Promise<never> {
        return Promise.reject(new Error('the vector store is down'));
      }
    }
    const early = rig('broken-early', new MemoryIntelligenceStore(), { vectors: new UnreadableVectors(256) });
    await upload(early.jobs, 'one', images.filter((i) => i.kind === 'base').slice(0, 2));
    const ended = await follow(
      early.jobs,
      await early.jobs.start({ projectId: 'p', source: { datasetId: 'one' } }),
      'FAILED',
    );
    assert.equal(ended.record.status, 'FAILED');
    await early.jobs.close();
  });

  it("refuses raw prefixes in or reaching into the platform's own areas, and reads the users' areas", async () => {
    const { jobs, blobs } = rig('reserved');
    await blobs.put('logs/fn-a/2026-12-07/inv-1.log', 'secret log line');
    await blobs.put('code/abc.zip', 'PK');
    for (const prefix of [
      '',
      'logs',
      'logs/',
      'logs/fn-a/',
      'log',
      'l',
      'cod',
      'code',
      'code/x',
      'workflow',
      'workflows/p/d/',
      'models',
      'model',
      'models/run-1/',
      'c',
    ]) {
      await assert.rejects(
        jobs.start({ projectId: 'p', source: { rawDataUri: `s3://savassan/${prefix}` } }),
        isCode('BAD_REQUEST'),
        prefix,
      );
    }
    await upload(jobs, 'shapes', images.slice(0, 3));
    for (const prefix of ['incoming', 'logsx/', 'codes/a', 'datasets/shapes/raw/', 'curated/', 'photos/2026']) {
      const record = await jobs.start({ projectId: 'p', source: { rawDataUri: `s3://savassan/${prefix}` } });
      assert.equal(record.status, 'PENDING', prefix);
    }
    await jobs.close();
  });

  it('serves only the images the job embedded and offered, as images, and leaves out files grown too large', async () => {
    const { jobs, blobs } = rig('serving');
    for (const image of images) await blobs.put(`in/${image.name}`, image.bytes);
    const started = await jobs.start({ projectId: 'p', source: { rawDataUri: 's3://savassan/in/' } });
    const { record } = await follow(jobs, started, 'AWAITING_FEEDBACK');
    assert.equal(record.status, 'AWAITING_FEEDBACK', record.failure ?? '');
    const imageIdOf = (key: string) => {
      const digest = createHash('sha256').update(`${record.id}\0${key}`).digest();
      let id = 'img-';
      for (let i = 0; i < 26; i++) id += 'abcdefghijklmnopqrstuvwxyz234567'[digest[i]! & 31];
      return id;
    };
    const offered = record.imagesForFeedback.map((i) => i.imageId);
    assert.ok(offered.includes(imageIdOf(record.imagesForFeedback[0]!.uri.slice('s3://savassan/'.length))));
    // Listed under the prefix but not an image the job embedded: not served.
    assert.equal(await jobs.openImage(record.id, imageIdOf('in/readme.txt')), null);
    assert.equal(await jobs.openImage(record.id, imageIdOf('in/broken-garbled.png')), null);
    // Embedded but not offered for feedback: not served either.
    const embedded = images.filter((i) => i.kind === 'base').map((i) => imageIdOf(`in/${i.name}`));
    const notOffered = embedded.find((id) => !offered.includes(id));
    assert.ok(notOffered !== undefined);
    assert.equal(await jobs.openImage(record.id, notOffered), null);
    // An offered file replaced by bytes that are not an image's: not served.
    const [first, second, third] = record.imagesForFeedback;
    await blobs.put(first!.uri.slice('s3://savassan/'.length), 'not an image any more');
    assert.equal(await jobs.openImage(record.id, first!.imageId), null);
    const opened = await jobs.openImage(record.id, second!.imageId);
    assert.ok(opened !== null);
    assert.match(opened.contentType, /^image\//);
    assert.deepEqual(
      Buffer.concat(await opened.body.toArray()),
      await blobs.get(second!.uri.slice('s3://savassan/'.length)),
    );

    // A kept file now over the upload cap is left out of the dataset as a per-file error.
    const bigKey = third!.uri.slice('s3://savassan/'.length);
    const big = Buffer.alloc(maxImageBytes + 1);
    (await blobs.get(bigKey))!.copy(big);
    await blobs.put(bigKey, big);
    const done = await jobs.submitFeedback(record.id, [{ imageId: third!.imageId, accepted: true }], true);
    assert.equal(done.status, 'COMPLETED');
    const bigName = bigKey.slice('in/'.length);
    assert.match(done.errors.find((e) => e.file === bigName)?.message ?? '', /larger than/);
    const manifest = JSON.parse(
      (await blobs.get(`curated/${done.curatedDatasetId}/manifest.json`))!.toString(),
    ) as CurationManifest;
    assert.ok(!manifest.images.some((i) => i.imageId === third!.imageId));
    assert.ok(manifest.images.length > 0);
    // Once complete, the curated dataset's images are served too.
    const curated = await jobs.openImage(done.id, manifest.images[0]!.imageId);
    assert.ok(curated !== null);
    curated.body.destroy();
    await jobs.close();
  });

  it('resumes active jobs from the SQLite store after a restart, with the vectors stored or embedding them again', async () => {
    const metadata = await openSqliteMetadataStore(join(dir, 'metadata.db'));
    const store = new SqlIntelligenceStore(metadata.shared());
    const first = rig('resume', store);
    await upload(first.jobs, 'shapes', images);
    const started = await first.jobs.start({ projectId: 'p', source: { datasetId: 'shapes' } });
    // Stop before the job has embedded everything: close at its first progress write.
    const embedding = await first.jobs.waitForChange(started.id, started.revision, AbortSignal.timeout(60_000));
    await first.jobs.close();
    assert.ok(embedding !== null);
    const stopped = (await store.getCuration(started.id))!;
    assert.ok(stopped.status === 'PENDING' || stopped.status === 'EMBEDDING', stopped.status);

    const second = new CurationJobs({
      store,
      blobs: first.blobs,
      bucket: 'savassan',
      embedder: first.embedder,
      vectors: first.vectors,
      pollMs: 50,
    });
    await second.resume();
    const { record } = await follow(second, stopped, 'AWAITING_FEEDBACK');
    assert.equal(record.status, 'AWAITING_FEEDBACK');
    assert.equal(record.progress.embedded + record.progress.failed, images.length);
    await second.close();

    // Restarted again with an empty vector store (a memory one): the images are embedded again for the feedback.
    const third = new CurationJobs({
      store,
      blobs: first.blobs,
      bucket: 'savassan',
      embedder: first.embedder,
      vectors: new MemoryVectorStore(first.embedder.dimensions),
      pollMs: 50,
    });
    await third.resume();
    const reopened = await third.openImage(record.id, record.imagesForFeedback[0]!.imageId);
    assert.ok(reopened !== null);
    reopened.body.destroy();
    const done = await third.submitFeedback(
      record.id,
      [{ imageId: record.imagesForFeedback[0]!.imageId, accepted: true }],
      true,
    );
    assert.equal(done.status, 'COMPLETED');
    await third.close();
    await metadata.close();
  });

  it('runs on the PGlite vector store (the default one)', async () => {
    const embedder = new PixelEmbedder();
    const { record, manifest } = await curateOnce('pglite', {
      embedder,
      vectors: createPgliteVectorStore({ dimensions: embedder.dimensions }),
    });
    assert.equal(record.progress.duplicates, images.filter((i) => i.kind === 'duplicate').length);
    assert.equal(manifest.dimensions, 256);
    assert.equal(manifest.images.length + manifest.excluded.length, images.length - 3);
  });

  it(
    'runs with the ONNX embedder (mobilenetv2 features)',
    { skip: existsSync(modelPath) ? false : `no test model at ${modelPath}` },
    async () => {
      const embedder = await createOnnxEmbedder({ modelPath, outputTensor: '464', threads: 1, batch: 4 });
      const { manifest } = await curateOnce('onnx', {
        embedder,
        vectors: new MemoryVectorStore(embedder.dimensions),
      });
      assert.equal(manifest.embedder, 'onnx:mobilenetv2-12-int8.onnx#464');
      assert.equal(manifest.dimensions, 1280);
      assert.equal(manifest.images.length + manifest.excluded.length, images.length - 3);
    },
  );
});
