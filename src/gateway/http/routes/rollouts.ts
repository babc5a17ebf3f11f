// `/v1/functions/{name}/rollouts`: progressive moves of an alias's traffic from its version (the baseline) to a new
// one (the canary), step by step. The control-plane leader judges each step against the baseline running at the same
// time and advances, promotes or rolls back; these routes start one and promote or abort it by hand.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { isPlatformError } from '../../../core/errors.js';
import { currentStep } from '../../../core/rollouts.js';
import { defaultRolloutSettings, maxRolloutsListed, rolloutSettingLimits } from '../../../core/traffic-rules.js';
import { weightsToRecord } from '../../../core/traffic.js';
import type { Rollout, VersionFigures } from '../../../core/types.js';
import type { Traffic } from '../../traffic.js';
import { errorResponse, QueryCount, queryCount } from '../schemas.js';
import { WeightsView } from './aliases.js';

const FunctionParams = Type.Object({ name: Type.String({ maxLength: 200 }) });
const RolloutParams = Type.Object({ name: Type.String({ maxLength: 200 }), id: Type.String({ maxLength: 100 }) });

const limit = (field: keyof typeof rolloutSettingLimits, what: string) => {
  const { min, max } = rolloutSettingLimits[field];
  return Type.Optional(
    Type.Number({ description: `${what}: from ${min} to ${max} (default ${defaultRolloutSettings[field]})` }),
  );
};

const RolloutBody = Type.Object(
  {
    version: Type.Integer({ minimum: 1, description: 'The canary: the version to move the traffic to' }),
    alias: Type.Optional(Type.String({ maxLength: 200, description: 'The alias whose traffic moves (default live)' })),
    steps: Type.Optional(
      Type.Array(Type.Number(), {
        maxItems: 100,
        description:
          "The canary's share at each step, in percent: strictly increasing whole numbers from 1 to 100, the last " +
          `one 100 (default ${defaultRolloutSettings.steps.join(', ')})`,
      }),
    ),
    intervalSeconds: limit('intervalSeconds', 'How long each step lasts before it is judged, in seconds'),
    maxErrorRate: limit(
      'maxErrorRate',
      "How far the canary's error rate may exceed the baseline's (0.01: one point), by a one-sided 95% test",
    ),
    maxP99Ratio: limit('maxP99Ratio', "The canary's p99 latency may be at most this multiple of the baseline's"),
    minRequests: limit('minRequests', 'Invocations of the canary (and the baseline) in a step before it is judged'),
    rollbackWindowSeconds: limit(
      'rollbackWindowSeconds',
      "How long the baseline's warm instances are kept after promotion, in seconds",
    ),
  },
  { additionalProperties: false },
);

const FiguresView = Type.Object(
  {
    requests: Type.Integer(),
    errors: Type.Integer({ description: 'Invocations that failed: error, timeout, crash, out of memory, init error' }),
    p99Ms: Type.Union([Type.Number(), Type.Null()], {
      description: 'Of the most recent 10,000 warm invocations of the step at most; null without warm invocations',
    }),
  },
  { additionalProperties: false },
);

const RolloutEventView = Type.Object(
  {
    at: Type.String({ format: 'date-time' }),
    step: Type.Integer({ description: "The canary's share (percent) at the step under way" }),
    canary: FiguresView,
    baseline: FiguresView,
    decision: Type.Enum(['started', 'advanced', 'promoted', 'rolled_back', 'aborted'], { type: 'string' }),
    reason: Type.String(),
  },
  { additionalProperties: false, description: 'A step started, judged, or the rollout ended, and why' },
);

const RolloutSettingsView = Type.Object(
  {
    steps: Type.Array(Type.Integer()),
    intervalSeconds: Type.Number(),
    maxErrorRate: Type.Number(),
    maxP99Ratio: Type.Number(),
    minRequests: Type.Integer(),
    rollbackWindowSeconds: Type.Number(),
  },
  { additionalProperties: false },
);

const RolloutView = Type.Object(
  {
    id: Type.String(),
    functionName: Type.String(),
    alias: Type.String(),
    version: Type.Integer({ description: 'The canary' }),
    baseline: Type.Integer({ description: 'The version that had the traffic when the rollout started' }),
    state: Type.Enum(['running', 'promoted', 'rolled_back', 'aborted'], { type: 'string' }),
    step: Type.Integer({ description: "The canary's share (percent) at the step under way, or the last one reached" }),
    stepIndex: Type.Integer(),
    steps: Type.Array(Type.Integer()),
    stepStartedAt: Type.String({ format: 'date-time' }),
    weights: { ...WeightsView, description: "The alias's weights now" },
    settings: RolloutSettingsView,
    history: Type.Array(RolloutEventView),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    endedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'When it was promoted, rolled back or aborted; null while running',
    }),
  },
  { additionalProperties: false, description: 'A rollout: where it stands, and what was decided at each step' },
);

type RolloutView = Static<typeof RolloutView>;

const figures = (f: VersionFigures) => ({ requests: f.requests, errors: f.errors, p99Ms: f.p99Ms });

function rolloutView(rollout: Rollout, weights: Record<string, number>): RolloutView {
  return {
    id: rollout.id,
    functionName: rollout.functionName,
    alias: rollout.alias,
    version: rollout.version,
    baseline: rollout.baseline,
    state: rollout.state,
    step: currentStep(rollout),
    stepIndex: rollout.stepIndex,
    steps: rollout.settings.steps,
    stepStartedAt: rollout.stepStartedAt.toISOString(),
    weights,
    settings: { ...rollout.settings },
    history: rollout.history.map((event) => ({
      at: event.at.toISOString(),
      step: event.step,
      canary: figures(event.canary),
      baseline: figures(event.baseline),
      decision: event.decision,
      reason: event.reason,
    })),
    createdAt: rollout.createdAt.toISOString(),
    updatedAt: rollout.updatedAt.toISOString(),
    endedAt: rollout.endedAt?.toISOString() ?? null,
  };
}

/**
 * The rollout routes, for `app.register`.
 *
 * @example
 * // POST /v1/functions/shop/rollouts {"version": 3, "steps": [10, 50, 100], "intervalSeconds": 30}
 * //   → 201 {"id": "…", "state": "running", "version": 3, "baseline": 2, "step": 10, "weights": {"2": 0.9, "3": 0.1}, …}
 * // GET /v1/functions/shop/rollouts?limit=10 → {"rollouts": [the 10 newest, newest first]} (default and at most 100)
 * // POST /v1/functions/shop/rollouts/ID/abort → {"state": "aborted", "weights": {"2": 1}, …}
 * await app.register(rolloutRoutes(traffic));
 */
export function rolloutRoutes(traffic: Traffic): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    /** The views of some rollouts of one function, each with its alias's weights now (read once per alias). */
    const views = async (name: string, rollouts: Rollout[]): Promise<RolloutView[]> => {
      const weights = new Map<string, Promise<Record<string, number>>>();
      const weightsOf = (alias: string) => {
        let found = weights.get(alias);
        if (found === undefined) {
          found = traffic.getAlias(name, alias).then(
            (a) => weightsToRecord(a.weights),
            // An ended rollout's alias may have been deleted since.
            (err: unknown) => {
              if (isPlatformError(err, 'NOT_FOUND')) return {};
              throw err;
            },
          );
          weights.set(alias, found);
        }
        return found;
      };
      return Promise.all(rollouts.map(async (rollout) => rolloutView(rollout, await weightsOf(rollout.alias))));
    };
    const view = async (rollout: Rollout): Promise<RolloutView> =>
      (await views(rollout.functionName, [rollout]))[0] as RolloutView;

    const notRunning = errorResponse('CONFLICT: the rollout is not running (error.state says what it became)');
    const noRollout = errorResponse('NOT_FOUND: no function of that name, or no such rollout');

    app.post(
      '/v1/functions/:name/rollouts',
      {
        schema: {
          summary:
            "Start a rollout: the alias's traffic moves from its version (the baseline) to `version` (the canary) " +
            'step by step, each step judged by the control-plane leader against the baseline running at the same ' +
            'time; a failed step gives the baseline all of the traffic back at once (`rolled_back`)',
          params: FunctionParams,
          body: RolloutBody,
          response: {
            201: { ...RolloutView, description: 'Started: the alias is weighted by the first step' },
            400: errorResponse(
              'BAD_REQUEST naming the field: steps not strictly increasing whole percents ending at 100, a setting ' +
                'out of range, a bad alias name; INVALID_NAME. Nothing changed',
            ),
            404: errorResponse('NOT_FOUND: no function of that name, no such version, or no such alias'),
            409: errorResponse(
              'CONFLICT: a rollout of the function is running already, or the version has all of the alias already',
            ),
          },
        },
      },
      async (request, reply) => {
        const rollout = await traffic.startRollout(request.params.name, request.body);
        return reply.code(201).send(await view(rollout));
      },
    );

    app.get(
      '/v1/functions/:name/rollouts',
      {
        schema: {
          summary: `A function's newest rollouts, newest first: \`limit\` of them (default and at most ${maxRolloutsListed})`,
          params: FunctionParams,
          querystring: Type.Object(
            { limit: Type.Optional(QueryCount) },
            {
              additionalProperties: false,
              description: `limit: how many, newest first (default and at most ${maxRolloutsListed})`,
            },
          ),
          response: {
            200: Type.Object({ rollouts: Type.Array(RolloutView) }, { additionalProperties: false }),
            400: errorResponse('BAD_REQUEST: an unknown query parameter, or a limit out of range'),
            404: errorResponse('NOT_FOUND: no function of that name'),
          },
        },
      },
      async (request) => {
        const limit = queryCount(request.query.limit, 'limit', maxRolloutsListed, maxRolloutsListed);
        return { rollouts: await views(request.params.name, await traffic.listRollouts(request.params.name, limit)) };
      },
    );

    app.get(
      '/v1/functions/:name/rollouts/:id',
      {
        schema: {
          summary: 'Get a rollout: its state, step, weights and history',
          params: RolloutParams,
          response: { 200: RolloutView, 404: noRollout },
        },
      },
      async (request) => view(await traffic.getRollout(request.params.name, request.params.id)),
    );

    app.post(
      '/v1/functions/:name/rollouts/:id/promote',
      {
        schema: {
          summary: 'Promote a running rollout now: the canary gets all of the alias\'s traffic (state "promoted")',
          params: RolloutParams,
          response: { 200: RolloutView, 404: noRollout, 409: notRunning },
        },
      },
      async (request) => view(await traffic.promote(request.params.name, request.params.id)),
    );

    app.post(
      '/v1/functions/:name/rollouts/:id/abort',
      {
        schema: {
          summary:
            "Abort a running rollout now, without judging anything: the baseline gets all of the alias's " +
            'traffic back (state "aborted")',
          params: RolloutParams,
          response: { 200: RolloutView, 404: noRollout, 409: notRunning },
        },
      },
      async (request) => view(await traffic.abort(request.params.name, request.params.id)),
    );
    return Promise.resolve();
  };
}
