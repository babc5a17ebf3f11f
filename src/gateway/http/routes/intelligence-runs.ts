// `/v1/intelligence/runs`: prompt-to-model runs, each an execution of the `fine-tune` workflow (plan → curate →
// feedback → train → evaluate), shown as a run view derived from the execution.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import { runStatusNames, type RunService, type RunView } from '../../../intelligence/services.js';
import { errorResponse, QueryCount, queryCount } from '../schemas.js';

/** Runs one list answers at most. */
const maxRunsPerAnswer = 1000;
const defaultRunsPerAnswer = 50;
/** Largest body of `POST /v1/intelligence/runs` (the prompt is at most 16 000 characters). */
const maxRunBodyBytes = 256 * 1024;

const StartBody = Type.Object(
  {
    prompt: Type.String({ description: "What to fine-tune, in the user's words" }),
    rawDataUri: Type.Optional(Type.String({ description: "s3://BUCKET/PREFIX in the platform's bucket" })),
    datasetId: Type.Optional(Type.String({ description: 'An uploaded dataset (`POST /v1/datasets/{id}/images`)' })),
    userId: Type.Optional(Type.String()),
    trainer: Type.Optional(Type.String({ description: 'The training function (default fine-tune-trainer)' })),
    planId: Type.Optional(
      Type.String({
        maxLength: 200,
        description:
          'A stored SUCCESS plan (`POST /v1/plans`, e.g. with an edited `plan`): the run uses it instead of planning ' +
          'from the prompt',
      }),
    ),
  },
  { additionalProperties: false, description: 'Exactly one of rawDataUri and datasetId' },
);

const RunAnswer = Type.Object(
  {
    id: Type.String(),
    status: Type.String({ enum: [...runStatusNames] }),
    prompt: Type.String(),
    userId: Type.String(),
    execution: Type.Object({ project: Type.String(), domain: Type.String(), name: Type.String() }),
    planId: Type.Union([Type.String(), Type.Null()]),
    plan: Type.Unknown({ description: 'The plan (FineTunePlan) once planned' }),
    curationId: Type.Union([Type.String(), Type.Null()], {
      description: 'The curation job once curated: its feedback is `POST /v1/curations/{id}/feedback`',
    }),
    curatedDatasetUri: Type.Union([Type.String(), Type.Null()]),
    output: Type.Unknown({ description: "The fine-tune execution's output once SUCCEEDED" }),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
  },
  {
    description:
      'A run: PLANNING, CURATING, AWAITING_FEEDBACK, TRAINING, EVALUATING, then SUCCEEDED, FAILED or ABORTED',
  },
);

const RunParams = Type.Object({ id: Type.String({ maxLength: 200 }) });

const ListQuery = Type.Object(
  {
    limit: Type.Optional(QueryCount),
    before: Type.Optional(Type.String({ format: 'date-time', description: 'runs created before this time' })),
  },
  { additionalProperties: false },
);

/**
 * The run routes, for `app.register`.
 *
 * @example
 * // POST /v1/intelligence/runs {"prompt": "my dog Fluffy as a watercolour", "datasetId": "fluffy"} → 201 run view
 * // POST /v1/intelligence/runs {"prompt": "…", "datasetId": "fluffy", "planId": "plan-…"} → 201, that plan used
 * // GET /v1/intelligence/runs/run-… → the run view (AWAITING_FEEDBACK with its curationId, ...)
 * await app.register(intelligenceRunRoutes(services.runs));
 */
export function intelligenceRunRoutes(runs: RunService): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/v1/intelligence/runs',
      {
        bodyLimit: maxRunBodyBytes,
        schema: {
          summary: 'Start a prompt-to-model run (an execution of the fine-tune workflow)',
          body: StartBody,
          response: {
            201: RunAnswer,
            400: errorResponse(
              'BAD_REQUEST: no prompt, not exactly one source, a dataset with no images, an unknown trainer, a ' +
                'planId that is unknown or not a SUCCESS plan',
            ),
            413: errorResponse('PAYLOAD_TOO_LARGE: the prompt is too long'),
            503: errorResponse('UNAVAILABLE: the fine-tune workflow is not deployed'),
          },
        },
      },
      async (request, reply) => {
        const { prompt, rawDataUri, datasetId, userId, trainer, planId } = request.body;
        const source =
          rawDataUri !== undefined && datasetId === undefined
            ? { rawDataUri }
            : datasetId !== undefined && rawDataUri === undefined
              ? { datasetId }
              : null;
        if (source === null) throw new PlatformError('BAD_REQUEST', 'give exactly one of rawDataUri and datasetId');
        const view = await runs.start({ prompt, source, userId, trainer, planId });
        return reply.code(201).send(view);
      },
    );

    app.get(
      '/v1/intelligence/runs',
      {
        schema: {
          summary: `Runs, newest first (limit, default ${defaultRunsPerAnswer}, at most ${maxRunsPerAnswer}; before: a time)`,
          querystring: ListQuery,
          response: { 200: Type.Object({ runs: Type.Array(RunAnswer) }), 400: errorResponse('A bad limit') },
        },
      },
      async (request): Promise<{ runs: RunView[] }> => {
        const limit = queryCount(request.query.limit, 'limit', defaultRunsPerAnswer, maxRunsPerAnswer);
        const before = request.query.before === undefined ? undefined : new Date(request.query.before);
        if (before !== undefined && Number.isNaN(before.getTime())) {
          throw new PlatformError('BAD_REQUEST', 'querystring/before must be a date-time');
        }
        return { runs: await runs.list({ limit, before }) };
      },
    );

    app.get(
      '/v1/intelligence/runs/:id',
      {
        schema: {
          summary: 'A run: its status (from its execution), plan, curation and output',
          params: RunParams,
          response: { 200: RunAnswer, 404: errorResponse('No such run') },
        },
      },
      async (request) => {
        const view = await runs.get(request.params.id);
        if (view === null) throw new PlatformError('NOT_FOUND', `run ${request.params.id} not found`);
        return view;
      },
    );
    return Promise.resolve();
  };
}
