// Figures for the console: invocation counts, errors and latency over a time window, per function and per version,
// read from the invocation records (every gateway answers alike); and `GET /v1/cluster`, who leads and how requests
// are routed.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import {
  compileStatsWindow,
  denseSeries,
  mergeBuckets,
  quantileMs,
  statsLimits,
} from '../../../core/invocation-stats.js';
import type { InvocationStatsBucket, StatsWindow } from '../../../core/invocation-stats.js';
import type { MetadataStore } from '../../../core/ports/metadata-store.js';
import type { ClusterView } from '../../cluster-view.js';
import { errorResponse } from '../schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const StatsQuery = Type.Object(
  {
    minutes: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,7}$',
        description:
          `How far back the window reaches, ${statsLimits.minutes.min} to ${statsLimits.minutes.max} ` +
          `(default ${statsLimits.minutes.default}; rounded up to whole steps)`,
      }),
    ),
    step: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,7}$',
        description:
          `Seconds per point, ${statsLimits.stepSeconds.min} to ${statsLimits.stepSeconds.max} ` +
          `(default ${statsLimits.stepSeconds.default}); at most ${statsLimits.maxPoints} points (minutes * 60 / step)`,
      }),
    ),
  },
  { additionalProperties: false },
);

const windowFields = {
  from: Type.String({ format: 'date-time', description: 'Start of the first point' }),
  to: Type.String({ format: 'date-time', description: 'End of the last point (the one holding now)' }),
  stepSeconds: Type.Integer(),
};

const p99 = Nullable(Type.Number({ description: 'Estimated from a duration histogram; null without invocations' }));
const p50 = Nullable(Type.Number({ description: 'Estimated from a duration histogram; null without invocations' }));
const counts = {
  invocations: Type.Integer(),
  errors: Type.Integer({ description: 'Invocations whose status is not success' }),
};

const FunctionsStatsView = Type.Object({
  ...windowFields,
  functions: Type.Array(
    Type.Object({
      name: Type.String(),
      ...counts,
      p99Ms: p99,
      series: Type.Array(Type.Object({ start: Type.String({ format: 'date-time' }), ...counts, p99Ms: p99 }), {
        description: 'One point per step, oldest first',
      }),
    }),
    { description: 'Every deployed function, by name' },
  ),
});

const FunctionStatsView = Type.Object({
  ...windowFields,
  versions: Type.Array(
    Type.Object({
      version: Type.Integer(),
      ...counts,
      p50Ms: p50,
      p99Ms: p99,
      series: Type.Array(
        Type.Object({ start: Type.String({ format: 'date-time' }), ...counts, p50Ms: p50, p99Ms: p99 }),
        { description: 'One point per step, oldest first' },
      ),
    }),
    { description: 'Each version that ran in the window, newest first' },
  ),
});

const ClusterViewSchema = Type.Object({
  mode: Type.Enum(['embedded', 'cluster'], { type: 'string' }),
  leader: Nullable(
    Type.Object({
      id: Type.String({ description: 'The control-plane leader (a manager id)' }),
      since: Nullable(Type.String({ format: 'date-time', description: 'When it was elected' })),
    }),
  ),
  routing: Nullable(
    Type.Object({
      version: Type.Integer(),
      updatedAt: Type.String({ format: 'date-time' }),
      nodes: Type.Array(Type.String(), { description: 'The nodes requests are routed to' }),
      entries: Type.Array(
        Type.Object({ functionName: Type.String(), version: Type.Integer(), nodes: Type.Array(Type.String()) }),
        { description: "Each function's current version and the nodes that may run it" },
      ),
    }),
  ),
});

type FunctionsStats = Static<typeof FunctionsStatsView>;
type FunctionStats = Static<typeof FunctionStatsView>;

function windowView(window: StatsWindow): { from: string; to: string; stepSeconds: number } {
  return {
    from: new Date(window.from).toISOString(),
    to: new Date(window.to).toISOString(),
    stepSeconds: window.stepMs / 1000,
  };
}

function range(window: StatsWindow): { since: Date; until: Date; stepMs: number } {
  return { since: new Date(window.from), until: new Date(window.to), stepMs: window.stepMs };
}

type Merged = ReturnType<typeof mergeBuckets>;

/** Counts, errors and p99 of merged buckets, as every stats view shows them. */
function figures(merged: Merged): { invocations: number; errors: number; p99Ms: number | null } {
  return { invocations: merged.invocations, errors: merged.errors, p99Ms: quantileMs(merged, 0.99) };
}

function groupBy<K>(buckets: readonly InvocationStatsBucket[], key: (b: InvocationStatsBucket) => K) {
  const groups = new Map<K, InvocationStatsBucket[]>();
  for (const bucket of buckets) {
    const k = key(bucket);
    const list = groups.get(k);
    if (list === undefined) groups.set(k, [bucket]);
    else list.push(bucket);
  }
  return groups;
}

/** Every deployed function's figures over the window (zeros for the idle ones). */
export async function functionsStats(metadata: MetadataStore, window: StatsWindow): Promise<FunctionsStats> {
  const [functions, buckets] = await Promise.all([metadata.listFunctions(), metadata.invocationStats(range(window))]);
  const byFunction = groupBy(buckets, (b) => b.functionName);
  return {
    ...windowView(window),
    functions: functions
      .map((fn) => fn.name)
      .sort()
      .map((name) => {
        const own = byFunction.get(name) ?? [];
        return {
          name,
          ...figures(mergeBuckets(own)),
          series: denseSeries(window, own, (start, point) => ({
            start: new Date(start).toISOString(),
            ...figures(point),
          })),
        };
      }),
  };
}

/** One function's figures per version over the window. Throws NOT_FOUND for an unknown function. */
export async function functionStats(
  metadata: MetadataStore,
  name: string,
  window: StatsWindow,
): Promise<FunctionStats> {
  if ((await metadata.getFunction(name)) === null) throw new PlatformError('NOT_FOUND', `function ${name} not found`);
  const buckets = await metadata.invocationStats({ ...range(window), functionName: name });
  const byVersion = groupBy(buckets, (b) => b.version);
  return {
    ...windowView(window),
    versions: [...byVersion.keys()]
      .sort((a, b) => b - a)
      .map((version) => {
        const own = byVersion.get(version) ?? [];
        const withMedian = (merged: Merged) => ({ ...figures(merged), p50Ms: quantileMs(merged, 0.5) });
        return {
          version,
          ...withMedian(mergeBuckets(own)),
          series: denseSeries(window, own, (start, point) => ({
            start: new Date(start).toISOString(),
            ...withMedian(point),
          })),
        };
      }),
  };
}

export interface StatsRoutesOptions {
  metadata: MetadataStore;
  cluster: () => Promise<ClusterView>;
}

/** `GET /v1/stats/functions`, `GET /v1/functions/{name}/stats` and `GET /v1/cluster`. */
export function statsRoutes(options: StatsRoutesOptions): FastifyPluginAsync {
  const { metadata } = options;
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/v1/stats/functions',
      {
        schema: {
          summary: "Every function's invocations, errors and p99 latency over a window, as totals and a series",
          description:
            'Read from the invocation records, so every gateway answers alike. Example: ' +
            '`GET /v1/stats/functions?minutes=60&step=60` gives 60 one-minute points per function.',
          querystring: StatsQuery,
          response: {
            200: FunctionsStatsView,
            400: errorResponse('BAD_REQUEST: minutes or step out of range, or more than 360 points'),
          },
        },
      },
      async (request) => functionsStats(metadata, compileStatsWindow(request.query, Date.now())),
    );

    app.get(
      '/v1/functions/:name/stats',
      {
        schema: {
          summary: "A function's invocations, errors and p50/p99 latency per version over a window",
          description:
            'One entry per version that ran in the window, newest first. Example: ' +
            '`GET /v1/functions/hello/stats?minutes=15&step=10`.',
          params: Type.Object({ name: Type.String({ maxLength: 200 }) }),
          querystring: StatsQuery,
          response: {
            200: FunctionStatsView,
            400: errorResponse('BAD_REQUEST: minutes or step out of range, or more than 360 points'),
            404: errorResponse('NOT_FOUND: no function of that name'),
          },
        },
      },
      async (request) => functionStats(metadata, request.params.name, compileStatsWindow(request.query, Date.now())),
    );

    app.get(
      '/v1/cluster',
      {
        schema: {
          summary: 'The mode, the control-plane leader and the routing table this gateway holds',
          description:
            'Embedded mode answers `{ "mode": "embedded", "leader": null, "routing": null }`. In cluster mode the ' +
            "leader comes from the control plane's election and the routing table is the one the leader last pushed.",
          response: { 200: ClusterViewSchema },
        },
      },
      async () => options.cluster(),
    );
    return Promise.resolve();
  };
}
