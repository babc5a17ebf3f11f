// The dataset and curation routes on a Fastify instance set up as the gateway's (error answers, route defaults),
// over the real curator: file blob store, pixels embedder, exact vector store, memory intelligence store.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';

import { FsBlobStore } from '../../../adapters/fs/fs-blob-store.js';
import { PixelEmbedder } from '../../../adapters/images/pixel-embedder.js';
import { MemoryIntelligenceStore } from '../../../adapters/memory/memory-intelligence-store.js';
import { MemoryVectorStore } from '../../../adapters/memory/memory-vector-store.js';
import { CurationJobs } from '../../../intelligence/curate/curation-jobs.js';
import { syntheticImages, type SyntheticImage } from '../../../../test/helpers/synthetic-images.js';
import { routeDefaults, toPlatformError, unknownQueryError } from '../route-defaults.js';
import { ErrorBody } from '../schemas.js';
import { sendError } from '../server.js';
import { curationRoutes } from './curations.js';

let dir = '';
let app: FastifyInstance;
let jobs: CurationJobs;
let images: SyntheticImage[] = [];
let base = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'savassan-curations-'));
  images = await syntheticImages({ perCluster: 4, duplicates: 1 });
  const embedder = new PixelEmbedder();
  jobs = new CurationJobs({
    store: new MemoryIntelligenceStore(),
    blobs: new FsBlobStore(join(dir, 'blobs')),
    bucket: 'savassan',
    embedder,
    vectors: new MemoryVectorStore(embedder.dimensions),
    pollMs: 50,
  });
  app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } }); // as the gateway's
  app.addSchema(ErrorBody);
  app.addHook('onRoute', routeDefaults({ apiKeysRequired: false }));
  app.setErrorHandler((err, request, reply) => sendError(reply, unknownQueryError(request) ?? toPlatformError(err)));
  await app.register(curationRoutes({ curations: jobs }));
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

after(async () => {
  await app.close();
  await jobs.close();
  await rm(dir, { recursive: true, force: true });
});

interface Json {
  [key: string]: unknown;
}

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const response = await app.inject({
    method: method as 'GET',
    url: path,
    ...(body === undefined ? {} : { payload: body as Json }),
  });
  return { status: response.statusCode, json: response.body === '' ? {} : response.json<Json>() };
}

const code = (json: Json) => (json['error'] as { code: string }).code;

describe('curation routes', () => {
  it('uploads images (streamed over HTTP), lists them, replaces by name, refuses bad names and large bodies', async () => {
    for (const image of images) {
      const response = await fetch(`${base}/v1/datasets/shapes/images?name=${image.name}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: image.bytes,
      });
      assert.equal(response.status, 201, await response.clone().text());
      const json = (await response.json()) as Json;
      assert.equal(json['uri'], `s3://savassan/datasets/shapes/raw/${image.name}`);
      assert.equal(json['bytes'], image.bytes.length);
      assert.match(json['imageId'] as string, /^img-[a-z2-7]{26}$/);
    }
    const again = await app.inject({
      method: 'POST',
      url: `/v1/datasets/shapes/images?name=${images[0]!.name}`,
      payload: images[0]!.bytes,
    });
    assert.equal(again.statusCode, 200, 'no content type: replaced');
    const listed = await call('GET', '/v1/datasets/shapes/images');
    assert.equal(listed.status, 200);
    assert.deepEqual(
      (listed.json['images'] as Json[]).map((i) => i['name']),
      images.map((i) => i.name),
    );
    assert.deepEqual((await call('GET', '/v1/datasets/nobody/images')).json, { images: [] });

    for (const url of [
      '/v1/datasets/shapes/images?name=.hidden',
      '/v1/datasets/shapes/images?name=a%2Fb',
      '/v1/datasets/Bad_Id/images?name=x.png',
      '/v1/datasets/shapes/images',
    ]) {
      const response = await app.inject({ method: 'POST', url, payload: Buffer.from('x') });
      assert.equal(response.statusCode, 400, url);
    }
    const big = await app.inject({
      method: 'POST',
      url: '/v1/datasets/shapes/images?name=big.png',
      payload: Buffer.alloc(25 * 1024 * 1024 + 1),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(code(big.json()), 'PAYLOAD_TOO_LARGE');
  });

  it('runs a curation: 400s for bad starts, 202, feedback 400 then 200, 409 after, images by id', async () => {
    for (const body of [
      { projectId: 'p' },
      { projectId: 'p', datasetId: 'shapes', rawDataUri: 's3://savassan/x/' },
      { projectId: 'p', rawDataUri: 's3://other-bucket/x/' },
      // The platform's own areas, and beginnings of their names (a listing matches partial segments).
      { projectId: 'p', rawDataUri: 's3://savassan/logs' },
      { projectId: 'p', rawDataUri: 's3://savassan/cod' },
      { projectId: 'p', rawDataUri: 's3://savassan/workflow' },
      { projectId: 'p', rawDataUri: 's3://savassan/models/' },
      { projectId: 'p', datasetId: 'nobody' },
      { projectId: 'p p', datasetId: 'shapes' },
      { projectId: 'p', datasetId: 'shapes', extra: 1 },
    ]) {
      const response = await call('POST', '/v1/curations', body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal(code(response.json), 'BAD_REQUEST');
    }
    const other = await call('POST', '/v1/curations', { projectId: 'p', rawDataUri: 's3://other-bucket/x/' });
    assert.match((other.json['error'] as { message: string }).message, /savassan/);

    const started = await call('POST', '/v1/curations', { projectId: 'proj', datasetId: 'shapes' });
    assert.equal(started.status, 202);
    assert.deepEqual(Object.keys(started.json).sort(), ['id', 'status']);
    assert.equal(started.json['status'], 'PENDING');
    const id = started.json['id'] as string;
    let record = (await jobs.get(id))!;
    while (record.status !== 'AWAITING_FEEDBACK' && record.status !== 'FAILED') {
      record = (await jobs.waitForChange(id, record.revision, AbortSignal.timeout(60_000)))!;
    }
    const view = await call('GET', `/v1/curations/${id}`);
    assert.equal(view.status, 200);
    assert.deepEqual(Object.keys(view.json).sort(), [
      'createdAt',
      'curatedDatasetId',
      'curatedDatasetUri',
      'embedder',
      'errors',
      'failure',
      'feedback',
      'id',
      'imagesForFeedback',
      'progress',
      'projectId',
      'status',
      'updatedAt',
    ]);
    assert.equal(view.json['status'], 'AWAITING_FEEDBACK');
    assert.equal((view.json['errors'] as Json[]).length, 3);
    const offered = view.json['imagesForFeedback'] as { imageId: string }[];
    const image = await app.inject(`/v1/curations/${id}/images/${offered[0]!.imageId}`);
    assert.equal(image.statusCode, 200);
    assert.match(String(image.headers['content-type']), /^image\/(png|jpeg)$/);
    assert.ok(images.some((i) => i.bytes.equals(image.rawPayload)));
    assert.equal((await call('GET', `/v1/curations/${id}/images/img-nope`)).status, 404);
    // An upload of the dataset that is not an image the job embedded is not served.
    const readme = (await jobs.listDatasetImages('shapes')).find((i) => i.name === 'readme.txt')!;
    assert.equal((await call('GET', `/v1/curations/${id}/images/${readme.imageId}`)).status, 404);
    assert.equal((await call('GET', '/v1/curations/cur-nope')).status, 404);
    assert.equal((await call('GET', '/v1/curations/cur-nope/images/img-x')).status, 404);

    const unknown = await call('POST', `/v1/curations/${id}/feedback`, {
      feedback: [
        { imageId: offered[0]!.imageId, accepted: true },
        { imageId: 'img-nope', accepted: false },
      ],
    });
    assert.equal(unknown.status, 400);
    assert.equal((await call('POST', `/v1/curations/${id}/feedback`, { feedback: 'yes' })).status, 400);
    const partial = await call('POST', `/v1/curations/${id}/feedback`, {
      feedback: [{ imageId: offered[0]!.imageId, accepted: true }],
      complete: false,
    });
    assert.equal(partial.status, 200);
    assert.equal(partial.json['status'], 'AWAITING_FEEDBACK');
    assert.deepEqual(partial.json['feedback'], [{ imageId: offered[0]!.imageId, accepted: true }]);
    const done = await call('POST', `/v1/curations/${id}/feedback`, {
      feedback: [{ imageId: offered[1]!.imageId, accepted: false }],
    });
    assert.equal(done.status, 200);
    assert.equal(done.json['status'], 'COMPLETED');
    assert.match(done.json['curatedDatasetUri'] as string, /^s3:\/\/savassan\/curated\/ds-[a-z2-7]{26}\/$/);
    const late = await call('POST', `/v1/curations/${id}/feedback`, { feedback: [] });
    assert.equal(late.status, 409);
    assert.equal(code(late.json), 'CONFLICT');
    assert.equal((await call('POST', '/v1/curations/cur-nope/feedback', { feedback: [] })).status, 404);
  });
});
