import type { Transaction } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import { primaryVersion } from '../../core/traffic-rules.js';
import { liveAlias } from '../../core/types.js';
import type { VersionWeight } from '../../core/types.js';
import type { Database, DbExecutor, RolloutRow } from './schema.js';

/**
 * Alias and rollout rows as both SQL stores write them: the metadata store moves `live` on deploys and version
 * changes, the traffic store everywhere else. Every write here runs inside a transaction that holds the function
 * row's lock (`lockFunction`).
 */

export function weightsToJson(weights: readonly VersionWeight[]): string {
  return JSON.stringify(weights.map(({ version, weight }) => ({ version, weight })));
}

export function weightsFromJson(json: string): VersionWeight[] {
  const parsed = JSON.parse(json) as { version: unknown; weight: unknown }[];
  return parsed.map((entry) => ({ version: Number(entry.version), weight: Number(entry.weight) }));
}

/**
 * Write an alias's weights (and, when given, its sticky header), creating the alias if missing; for `live`, moves
 * `functions.current_version` to the primary version too. Returns whether the alias was created.
 */
export async function writeAliasWeights(
  trx: Transaction<Database>,
  functionName: string,
  alias: string,
  weights: readonly VersionWeight[],
  now: number,
  stickyHeader?: string | null,
): Promise<boolean> {
  const json = weightsToJson(weights);
  const updated = await trx
    .updateTable('aliases')
    .set(
      stickyHeader === undefined
        ? { weights: json, updated_at: now }
        : { weights: json, sticky_header: stickyHeader, updated_at: now },
    )
    .where('function_name', '=', functionName)
    .where('name', '=', alias)
    .executeTakeFirst();
  const created = updated.numUpdatedRows === 0n;
  if (created) {
    await trx
      .insertInto('aliases')
      .values({
        function_name: functionName,
        name: alias,
        weights: json,
        sticky_header: stickyHeader ?? null,
        created_at: now,
        updated_at: now,
      })
      .execute();
  }
  if (alias === liveAlias) {
    await trx
      .updateTable('functions')
      .set({ current_version: primaryVersion(weights), updated_at: now })
      .where('name', '=', functionName)
      .execute();
  }
  return created;
}

/** The function's running rollout, if any. */
export async function runningRollout(db: DbExecutor, functionName: string): Promise<RolloutRow | undefined> {
  return db.selectFrom('rollouts').selectAll().where('running_function', '=', functionName).executeTakeFirst();
}

/** Throws CONFLICT naming the running rollout of the function (on `alias`, when given), if there is one. */
export async function refuseWhileRolloutRuns(
  trx: Transaction<Database>,
  functionName: string,
  action: string,
  alias?: string,
): Promise<void> {
  const running = await runningRollout(trx, functionName);
  if (running === undefined || (alias !== undefined && running.alias !== alias)) return;
  throw new PlatformError(
    'CONFLICT',
    `cannot ${action}: rollout ${running.id} of version ${Number(running.version)} is running on alias ${running.alias} of function ${functionName} (promote or abort it first)`,
    { details: { rolloutId: running.id } },
  );
}

/** Delete every alias and rollout of a function (its delete). */
export async function deleteTrafficOf(trx: Transaction<Database>, functionName: string): Promise<void> {
  await trx.deleteFrom('rollouts').where('function_name', '=', functionName).execute();
  await trx.deleteFrom('aliases').where('function_name', '=', functionName).execute();
}

/**
 * Function name → the versions that may get traffic without a further check of their secrets: those its aliases
 * name, and a running rollout's canary and baseline (an abort moves traffic back to the baseline even when a 100%
 * step has left it out of the alias).
 */
export async function versionsInService(db: DbExecutor): Promise<Map<string, Set<number>>> {
  const aliases = await db.selectFrom('aliases').select(['function_name', 'weights']).execute();
  const rollouts = await db
    .selectFrom('rollouts')
    .select(['function_name', 'version', 'baseline'])
    .where('running_function', 'is not', null)
    .execute();
  const versions = new Map<string, Set<number>>();
  const add = (functionName: string, version: number): void => {
    const set = versions.get(functionName) ?? new Set<number>();
    set.add(version);
    versions.set(functionName, set);
  };
  for (const row of aliases) {
    for (const { version } of weightsFromJson(row.weights)) add(row.function_name, version);
  }
  for (const row of rollouts) {
    add(row.function_name, Number(row.version));
    add(row.function_name, Number(row.baseline));
  }
  return versions;
}
