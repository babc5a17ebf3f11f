// `/v1/datasets` (image uploads) and `/v1/curations` (curation jobs: embed, sample, feedback, curated dataset).
import type { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { curationStatusNames } from '../../../core/curation.js';
import { PlatformError } from '../../../core/errors.js';
import type { CurationRecord, DatasetImageRecord } from '../../../core/ports/intelligence-store.js';
import type { CurationService } from '../../../intelligence/services.js';
import { maxVerdicts } from '../../../intelligence/curate/curation-jobs.js';
import { errorResponse } from '../schemas.js';

export interface CurationRoutesOptions {
  curations: CurationService;
}

/** Largest upload: one image. */
const maxUploadBytes = 25 * 1024 * 1024;

const DatasetParams = Type.Object({
  datasetId: Type.String({
    maxLength: 200,
    description: '1-63 lowercase letters, digits and "-", starting with a letter or digit',
  }),
});
const UploadQuery = Type.Object(
  {
    name: Type.String({
      maxLength: 200,
      description: 'The file name: 1-128 of letters, digits, ".", "_", "-", not starting with "."',
    }),
  },
  { additionalProperties: false },
);
const CurationParams = Type.Object({ id: Type.String({ maxLength: 100 }) });
const ImageParams = Type.Object({ id: Type.String({ maxLength: 100 }), imageId: Type.String({ maxLength: 100 }) });

const DatasetImageView = Type.Object({
  datasetId: Type.String(),
  imageId: Type.String({ description: 'New on every upload' }),
  name: Type.String(),
  uri: Type.String({ description: 's3://BUCKET/datasets/{datasetId}/raw/{name}' }),
  bytes: Type.Integer(),
  sha256: Type.String({ description: 'Hex SHA-256 of the bytes' }),
  contentType: Type.String({ description: 'From the magic bytes; application/octet-stream when not an image' }),
  createdAt: Type.String({ format: 'date-time' }),
});

const StartBody = Type.Object(
  {
    projectId: Type.String({ maxLength: 200, description: '1-128 of letters, digits, ".", "_", "-"' }),
    rawDataUri: Type.Optional(
      Type.String({
        maxLength: 2000,
        description: "s3://BUCKET/PREFIX of the platform's own bucket (any other bucket is refused)",
      }),
    ),
    datasetId: Type.Optional(Type.String({ maxLength: 200, description: 'A dataset with uploaded images' })),
  },
  {
    additionalProperties: false,
    description: 'Exactly one of rawDataUri and datasetId',
    examples: [{ projectId: 'cats', datasetId: 'cat-photos' }],
  },
);

const FeedbackBody = Type.Object(
  {
    feedback: Type.Array(
      Type.Object(
        { imageId: Type.String({ maxLength: 100 }), accepted: Type.Boolean() },
        { additionalProperties: false },
      ),
      { maxItems: maxVerdicts },
    ),
    complete: Type.Optional(
      Type.Boolean({
        description: 'true (default): refine, write the curated dataset, COMPLETED; false: only record the verdicts',
      }),
    ),
  },
  { additionalProperties: false },
);

const CurationView = Type.Object({
  id: Type.String(),
  projectId: Type.String(),
  status: Type.String({ enum: [...curationStatusNames] }),
  progress: Type.Object({
    total: Type.Integer({ description: 'Files found' }),
    embedded: Type.Integer(),
    failed: Type.Integer({ description: 'Files that could not be read or decoded (see errors)' }),
    duplicates: Type.Integer({ description: 'Images dropped as near-duplicates of another' }),
  }),
  imagesForFeedback: Type.Array(
    Type.Object({
      imageId: Type.String(),
      uri: Type.String(),
      reason: Type.String({ enum: ['cluster', 'outlier', 'uncertain'] }),
      cluster: Type.Integer(),
    }),
  ),
  feedback: Type.Array(Type.Object({ imageId: Type.String(), accepted: Type.Boolean() })),
  curatedDatasetId: Type.Union([Type.String(), Type.Null()]),
  curatedDatasetUri: Type.Union([Type.String(), Type.Null()], {
    description: 's3://BUCKET/curated/{datasetId}/ (manifest.json and images/) once COMPLETED',
  }),
  errors: Type.Array(Type.Object({ file: Type.String(), message: Type.String() })),
  failure: Type.Union([Type.String(), Type.Null()], { description: 'With FAILED: why' }),
  embedder: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

function datasetImageView(record: DatasetImageRecord, bucket: string): Static<typeof DatasetImageView> {
  return {
    datasetId: record.datasetId,
    imageId: record.imageId,
    name: record.name,
    uri: `s3://${bucket}/${record.key}`,
    bytes: record.bytes,
    sha256: record.sha256,
    contentType: record.contentType,
    createdAt: record.createdAt.toISOString(),
  };
}

/** A curation job as the API shows it. */
export function curationView(record: CurationRecord): Static<typeof CurationView> {
  return {
    id: record.id,
    projectId: record.projectId,
    status: record.status,
    progress: record.progress,
    imagesForFeedback: record.imagesForFeedback,
    feedback: Object.entries(record.feedback).map(([imageId, accepted]) => ({ imageId, accepted })),
    curatedDatasetId: record.curatedDatasetId,
    curatedDatasetUri: record.curatedDatasetUri,
    errors: record.errors,
    failure: record.failure,
    embedder: record.embedder,
    createdAt: record.createdAt.toISOString(),
    updatedAt: record.updatedAt.toISOString(),
  };
}

const notFound = (id: string) => new PlatformError('NOT_FOUND', `curation ${id} does not exist`);

/**
 * The dataset and curation routes, for `app.register`.
 *
 * @example
 * // POST /v1/datasets/cats/images?name=tabby.jpg  (body: the image bytes)
 * //   → 201 {"datasetId": "cats", "imageId": "img-…", "name": "tabby.jpg", "uri": "s3://savassan/datasets/cats/raw/tabby.jpg", …}
 * // POST /v1/curations {"projectId": "cats", "datasetId": "cats"} → 202 {"id": "cur-…", "status": "PENDING"}
 * // GET /v1/curations/cur-…  → {"status": "AWAITING_FEEDBACK", "imagesForFeedback": [{"imageId", "uri", "reason", "cluster"}], …}
 * // POST /v1/curations/cur-…/feedback {"feedback": [{"imageId": "img-…", "accepted": true}]}
 * //   → 200 {"status": "COMPLETED", "curatedDatasetUri": "s3://savassan/curated/ds-…/", …}
 * await app.register(curationRoutes({ curations }));
 */
export function curationRoutes(options: CurationRoutesOptions): FastifyPluginAsync {
  const { curations } = options;
  return async (plugin) => {
    // The upload takes any content type and streams the body to the blob store: its own scope, where the body is
    // handed over unread.
    await plugin.register((scope, _opts, registered) => {
      const app = scope.withTypeProvider<TypeBoxTypeProvider>();
      app.removeAllContentTypeParsers();
      app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
      app.post(
        '/v1/datasets/:datasetId/images',
        {
          schema: {
            summary:
              'Upload an image into a dataset (created on first upload): the body is the file, any content type, at ' +
              'most 25 MiB, with a Content-Length. Not decoded here: a curation job reports files it cannot read. ' +
              'The same name again replaces the image (200)',
            params: DatasetParams,
            querystring: UploadQuery,
            response: {
              200: { ...DatasetImageView, description: 'An image of that name was replaced' },
              201: { ...DatasetImageView, description: 'Stored' },
              400: errorResponse('BAD_REQUEST: a bad dataset id or name, or no Content-Length'),
              413: errorResponse('PAYLOAD_TOO_LARGE: the image is over 25 MiB'),
            },
          },
        },
        async (request, reply) => {
          const header = request.headers['content-length'];
          const length = header === undefined ? Number.NaN : Number(header);
          if (length > maxUploadBytes) {
            throw new PlatformError('PAYLOAD_TOO_LARGE', `an image may be at most ${maxUploadBytes} bytes (25 MiB)`);
          }
          const body = (request.body as Readable | undefined) ?? request.raw;
          const { record, replaced } = await curations.addDatasetImage(
            request.params.datasetId,
            request.query.name,
            body,
            length,
          );
          return reply.code(replaced ? 200 : 201).send(datasetImageView(record, curations.bucket));
        },
      );
      registered();
    });

    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/v1/datasets/:datasetId/images',
      {
        schema: {
          summary: "A dataset's images, by name (none for a dataset nobody uploaded to)",
          params: DatasetParams,
          response: { 200: Type.Object({ images: Type.Array(DatasetImageView) }) },
        },
      },
      async (request) => ({
        images: (await curations.listDatasetImages(request.params.datasetId)).map((record) =>
          datasetImageView(record, curations.bucket),
        ),
      }),
    );

    app.post(
      '/v1/curations',
      {
        schema: {
          summary:
            'Start a curation job over uploaded images (datasetId) or an s3:// prefix of the platform bucket ' +
            '(rawDataUri): it embeds the images, drops near-duplicates, clusters them and picks images for feedback',
          body: StartBody,
          response: {
            202: Type.Object({ id: Type.String(), status: Type.Literal('PENDING') }),
            400: errorResponse(
              'BAD_REQUEST: not exactly one of rawDataUri and datasetId, another bucket, a bad projectId, or an ' +
                'unknown or empty dataset',
            ),
          },
        },
      },
      async (request, reply) => {
        const { projectId, rawDataUri, datasetId } = request.body;
        if ((rawDataUri === undefined) === (datasetId === undefined)) {
          throw new PlatformError('BAD_REQUEST', 'give exactly one of rawDataUri and datasetId');
        }
        const record = await curations.start({
          projectId,
          source: rawDataUri !== undefined ? { rawDataUri } : { datasetId: datasetId! },
        });
        return reply.code(202).send({ id: record.id, status: 'PENDING' as const });
      },
    );

    app.get(
      '/v1/curations/:id',
      {
        schema: {
          summary: 'A curation job: its status, progress, images for feedback, verdicts and curated dataset',
          params: CurationParams,
          response: { 200: CurationView, 404: errorResponse('NOT_FOUND: no such curation') },
        },
      },
      async (request) => {
        const record = await curations.get(request.params.id);
        if (record === null) throw notFound(request.params.id);
        return curationView(record);
      },
    );

    app.post(
      '/v1/curations/:id/feedback',
      {
        schema: {
          summary:
            'Give verdicts on images of a job AWAITING_FEEDBACK. With complete (the default) the job refines them ' +
            '(accepted images pull near neighbours in, rejected ones push theirs out), writes the curated dataset ' +
            'and is COMPLETED',
          params: CurationParams,
          body: FeedbackBody,
          response: {
            200: CurationView,
            400: errorResponse('BAD_REQUEST: an image that is not of this job (no verdict is applied)'),
            404: errorResponse('NOT_FOUND: no such curation'),
            409: errorResponse('CONFLICT: the job is not AWAITING_FEEDBACK'),
          },
        },
      },
      async (request) => {
        const record = await curations.submitFeedback(
          request.params.id,
          request.body.feedback,
          request.body.complete ?? true,
        );
        return curationView(record);
      },
    );

    app.get(
      '/v1/curations/:id/images/:imageId',
      {
        schema: {
          summary: "An image of a job, as the file's bytes (content type from its magic bytes)",
          params: ImageParams,
          response: {
            200: Type.Unknown({ description: 'The image' }),
            404: errorResponse('NOT_FOUND: no such curation, or no such image in it'),
          },
        },
      },
      async (request, reply) => {
        const { id, imageId } = request.params;
        const image = await curations.openImage(id, imageId);
        if (image === null) throw new PlatformError('NOT_FOUND', `curation ${id} has no image ${imageId}`);
        return reply
          .header('content-type', image.contentType)
          .header('x-content-type-options', 'nosniff')
          .send(image.body);
      },
    );
  };
}
