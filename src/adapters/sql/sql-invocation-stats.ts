import { sql } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import { statsDurationBoundsMs, statsLimits } from '../../core/invocation-stats.js';
import type { InvocationStatsBucket, InvocationStatsQuery } from '../../core/invocation-stats.js';
import type { BigIntValue, DbExecutor } from './schema.js';

/**
 * Counts invocation records per function, version and time bucket in one aggregate over the `created_at` (or
 * `function_name, created_at`) index. The step and the histogram bounds are validated numbers written as literals, so
 * the bucket expression in the select list and in `group by` is the same text on every engine.
 */
export async function sqlInvocationStats(
  db: DbExecutor,
  query: InvocationStatsQuery,
): Promise<InvocationStatsBucket[]> {
  const { stepMs } = query;
  const since = query.since.getTime();
  const until = query.until.getTime();
  if (!Number.isSafeInteger(stepMs) || stepMs <= 0 || !Number.isSafeInteger(since) || !Number.isSafeInteger(until)) {
    throw new PlatformError('BAD_REQUEST', 'invocation stats need whole-millisecond times and a positive step');
  }
  if (until <= since) return [];
  const maxBuckets = query.maxBuckets ?? statsLimits.maxBuckets;
  const step = sql.lit(stepMs);
  const bucket = sql<BigIntValue>`created_at - created_at % ${step}`;
  const le = statsDurationBoundsMs.map((bound, i) =>
    sql<BigIntValue | null>`sum(case when duration_ms <= ${sql.lit(bound)} then 1 else 0 end)`.as(`le${i}`),
  );
  let select = db
    .selectFrom('invocations')
    .select((eb) => [
      'function_name',
      'version',
      bucket.as('bucket'),
      eb.fn.countAll<BigIntValue>().as('invocations'),
      sql<BigIntValue | null>`sum(case when status <> 'success' then 1 else 0 end)`.as('errors'),
      eb.fn.max('duration_ms').as('max_duration_ms'),
      ...le,
    ])
    .where('created_at', '>=', since)
    .where('created_at', '<', until);
  if (query.functionName !== undefined) select = select.where('function_name', '=', query.functionName);
  const rows = (await select
    .groupBy(['function_name', 'version', bucket])
    .limit(maxBuckets + 1)
    .execute()) as unknown as Record<string, unknown>[];
  if (rows.length > maxBuckets) {
    throw new PlatformError(
      'BAD_REQUEST',
      `invocation stats over more than ${maxBuckets} function versions and time buckets: use a larger step, a shorter window or one function`,
    );
  }
  return rows.map((row) => ({
    functionName: String(row['function_name']),
    version: Number(row['version']),
    start: Number(row['bucket']),
    invocations: Number(row['invocations']),
    errors: Number(row['errors'] ?? 0),
    le: statsDurationBoundsMs.map((_bound, i) => Number(row[`le${i}`] ?? 0)),
    maxDurationMs: Number(row['max_duration_ms'] ?? 0),
  }));
}
