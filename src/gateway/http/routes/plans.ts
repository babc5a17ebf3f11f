// `/v1/plans`: Khaydarin, the prompt-to-plan chain. A prompt becomes a validated fine-tuning plan (or a record of why
// not); every request is kept and can be read back.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import { maxPromptChars, planJsonSchema, planStatusNames } from '../../../core/plan.js';
import type { FineTunePlan, PlanStatus } from '../../../core/plan.js';
import type { PlanRecord } from '../../../core/ports/intelligence-store.js';
import type { PlanService } from '../../../intelligence/services.js';
import { QueryCount, errorResponse, queryCount } from '../schemas.js';

/** The most bytes a plan request's body may have. */
export const maxPlanBodyBytes = 64 * 1024;

const keyPattern = '^[A-Za-z0-9._:@/-]{1,255}$';

const PlanBody = Type.Object(
  {
    prompt: Type.String({
      description: `What to fine-tune, in words (not empty; at most ${maxPromptChars} characters, else 413)`,
      examples: ['LoRA of my dog Fluffy in watercolor style, 25 photos'],
    }),
    userId: Type.Optional(Type.String({ pattern: keyPattern, description: 'Who asks (default `anonymous`)' })),
    requestId: Type.Optional(
      Type.String({
        pattern: keyPattern,
        description: 'Idempotency key: a request with a known one answers the stored record (200) and runs nothing',
      }),
    ),
    plan: Type.Optional(
      Type.Unknown({
        description:
          'A plan the user wrote or edited (FineTunePlan): no planner runs; it is validated (400 listing the ' +
          'problems with their JSON paths, nothing stored) and stored with status SUCCESS, planner `user`. The ' +
          'prompt is still required: it is what the plan is for',
      }),
    ),
  },
  { additionalProperties: false },
);

const Plan = Type.Unsafe<FineTunePlan>({
  ...structuredClone(planJsonSchema),
  description: 'The fine-tuning plan (it passed the schema and the rules between fields)',
});

const PlanView = Type.Object({
  id: Type.String({ description: '`plan-` and 26 lowercase base32 characters' }),
  requestId: Type.String(),
  userId: Type.String(),
  status: Type.Unsafe<PlanStatus>({
    type: 'string',
    enum: [...planStatusNames],
    description: 'SUCCESS, LLM_ERROR (the model call failed) or PARSING_ERROR (no valid plan after the repairs)',
  }),
  plan: Type.Union([Plan, Type.Null()], { description: 'Set only with SUCCESS' }),
  planner: Type.String({
    description: '`rule-based`, `openai-compatible:MODEL`, `llama-cpp:FILE`, or `user` (a plan given in the request)',
  }),
  attempts: Type.Integer({
    description: 'Model calls made (1 + repairs); 0 for the rule-based planner and a given plan',
  }),
  processingMs: Type.Number(),
  receivedAt: Type.String({ format: 'date-time' }),
  problems: Type.Array(
    Type.Object({
      path: Type.String({ description: 'A JSON path such as $.dataset.resolution' }),
      message: Type.String(),
    }),
    { description: "PARSING_ERROR: what the last answer broke; LLM_ERROR: the model's failure at `$`" },
  ),
  warnings: Type.Array(Type.String(), { description: 'What the planner did not find in the prompt and defaulted' }),
  prompt: Type.String(),
  llmPrompt: Type.Union([Type.String(), Type.Null()], { description: 'The prompt as the model got it (last call)' }),
  llmRawResponse: Type.Union([Type.String(), Type.Null()], { description: "The model's last raw answer" }),
});

export type PlanView = Static<typeof PlanView>;

/** A plan record as the API shows it. */
export function planView(record: PlanRecord): PlanView {
  return {
    id: record.id,
    requestId: record.requestId,
    userId: record.userId,
    status: record.status,
    plan: record.plan,
    planner: record.planner,
    attempts: record.attempts,
    processingMs: record.processingMs,
    receivedAt: record.receivedAt.toISOString(),
    problems: record.problems,
    warnings: record.warnings,
    prompt: record.userPrompt,
    llmPrompt: record.llmPrompt,
    llmRawResponse: record.llmRawResponse,
  };
}

const PlanParams = Type.Object({ id: Type.String({ maxLength: 100 }) });

const ListQuery = Type.Object(
  {
    userId: Type.Optional(Type.String({ pattern: keyPattern, description: "Only this user's plans" })),
    limit: Type.Optional(QueryCount),
    before: Type.Optional(
      Type.String({ maxLength: 40, description: 'A receivedAt (as `next` gives it): only plans received before it' }),
    ),
  },
  { additionalProperties: false, description: 'limit: how many, newest first (default 50, at most 1000)' },
);

/**
 * The plan routes, for `app.register`.
 *
 * @example
 * // POST /v1/plans {"prompt": "LoRA of my dog Fluffy in watercolor style", "requestId": "r-1"}
 * //   → 201 {"id": "plan-…", "status": "SUCCESS", "plan": {"tuning_type": "lora", …}, "warnings": [...], …}
 * //   the same requestId again → 200 and the same record
 * // POST /v1/plans {"prompt": "…", "plan": {…, "train_steps": 1200}} → 201 {"planner": "user", "plan": {…}, …}
 * // GET /v1/plans/plan-… → the same view; GET /v1/plans?userId=ada&limit=20 → {"plans": [...], "next": "…" | null}
 * await app.register(planRoutes({ plans }));
 */
export function planRoutes(options: { plans: PlanService }): FastifyPluginAsync {
  const { plans } = options;
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/v1/plans',
      {
        bodyLimit: maxPlanBodyBytes,
        schema: {
          summary:
            'Turn a prompt into a fine-tuning plan: the planner answers, the answer is validated (and repaired by the ' +
            'model up to twice), and the request is stored whatever its end. With `plan`, that plan (validated) is ' +
            'stored instead and no planner runs',
          body: PlanBody,
          response: {
            200: { ...PlanView, description: 'The requestId is known: its stored record; nothing ran' },
            201: { ...PlanView, description: 'A new request; its status says how it ended' },
            400: errorResponse(
              'BAD_REQUEST: an empty prompt, a malformed userId or requestId, or a given plan that is not valid',
            ),
            413: errorResponse(`PAYLOAD_TOO_LARGE: a prompt over ${maxPromptChars} characters or a body over 64 KiB`),
          },
        },
      },
      async (request, reply) => {
        const { record, created } = await plans.createPlan(request.body);
        return reply.code(created ? 201 : 200).send(planView(record));
      },
    );

    app.get(
      '/v1/plans',
      {
        schema: {
          summary: 'Plan requests, newest first',
          querystring: ListQuery,
          response: {
            200: Type.Object({
              plans: Type.Array(PlanView),
              next: Type.Union([Type.String(), Type.Null()], {
                description: 'Pass as ?before= for the next page; null: no more',
              }),
            }),
          },
        },
      },
      async (request) => {
        const limit = queryCount(request.query.limit, 'limit', 50, 1000);
        let before: Date | undefined;
        if (request.query.before !== undefined) {
          before = new Date(request.query.before);
          if (Number.isNaN(before.getTime())) {
            throw new PlatformError(
              'BAD_REQUEST',
              `querystring/before must be a date-time, got ${request.query.before}`,
            );
          }
        }
        const records = await plans.listPlans({ userId: request.query.userId, limit, before });
        const last = records.at(-1);
        return {
          plans: records.map(planView),
          next: records.length === limit && last !== undefined ? last.receivedAt.toISOString() : null,
        };
      },
    );

    app.get(
      '/v1/plans/:id',
      {
        schema: {
          summary: 'A plan request and how it ended',
          params: PlanParams,
          response: { 200: PlanView, 404: errorResponse('NOT_FOUND: no plan of that id') },
        },
      },
      async (request) => {
        const record = await plans.getPlan(request.params.id);
        if (record === null) throw new PlatformError('NOT_FOUND', `no plan ${request.params.id}`);
        return planView(record);
      },
    );
    return Promise.resolve();
  };
}
