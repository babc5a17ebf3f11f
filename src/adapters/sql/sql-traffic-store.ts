import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Insertable, Transaction } from 'kysely';
import { isPlatformError, PlatformError } from '../../core/errors.js';
import type {
  AliasInput,
  NewRollout,
  RolloutChange,
  ServedVersions,
  TrafficStore,
} from '../../core/ports/traffic-store.js';
import {
  isAliasName,
  maxAliasesPerFunction,
  maxRolloutsListed,
  noFigures,
  p99SampleSize,
  primaryVersion,
  rolloutErrorStatuses,
  rolloutSettingLimits,
  stepWeights,
  validateAliasName,
  validateRolloutSettings,
  validateStickyHeader,
  validateWeights,
} from '../../core/traffic-rules.js';
import { liveAlias } from '../../core/types.js';
import type { Alias, Rollout, RolloutEvent, RolloutSettings, RolloutState, VersionFigures } from '../../core/types.js';
import type { AliasRow, BigIntValue, Database, DbExecutor, RolloutRow, RolloutsTable } from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import {
  configFromJson,
  dateFromDb,
  existingFunction,
  intFromDb,
  isVersionNumber,
  latestVersion,
  lockFunction,
  millisFromDate,
  requireSecrets,
} from './sql-metadata-store.js';
import { refuseWhileRolloutRuns, runningRollout, weightsFromJson, writeAliasWeights } from './traffic-rows.js';

const rolloutStates: ReadonlySet<string> = new Set<RolloutState>(['running', 'promoted', 'rolled_back', 'aborted']);

/** Promoted rollouts that ended longer ago than the longest rollback window retain nothing. */
const maxRollbackWindowMs = rolloutSettingLimits.rollbackWindowSeconds.max * 1000;

/** Versions per `in (...)` list, well under every engine's limit on bound parameters. */
const versionsPerQuery = 500;

/**
 * `TrafficStore` over the database of a `SqlMetadataStore` (SQLite, PostgreSQL or MySQL): it shares that store's
 * connections, lifecycle (closed with it), retries and durability barrier, so aliases, rollouts, versions and
 * secrets change atomically with each other. Every write locks the function's row first (`lockFunction`), the order
 * the metadata store's writes take too; a unique column keeps a second running rollout out even so.
 *
 * @example
 * const metadata = await openSqliteMetadataStore(path);
 * const traffic = new SqlTrafficStore(metadata.shared());
 * await traffic.putAlias('billing', 'beta', { weights: [{ version: 3, weight: 1 }], stickyHeader: null });
 */
export class SqlTrafficStore implements TrafficStore {
  readonly #access: SqlStoreAccess;

  constructor(access: SqlStoreAccess) {
    this.#access = access;
  }

  getAlias(functionName: string, alias: string): Promise<Alias | null> {
    return this.#access.run(`read alias ${alias} of function ${functionName}`, async () => {
      if (!isAliasName(alias)) return null;
      const row = await selectAlias(this.#access.db, functionName, alias);
      return row === undefined ? null : aliasFromRow(row);
    });
  }

  listAliases(functionName: string): Promise<Alias[]> {
    return this.#access.run(`list aliases of function ${functionName}`, async () => {
      const rows = await this.#access.db
        .selectFrom('aliases')
        .selectAll()
        .where('function_name', '=', functionName)
        .orderBy('name')
        .execute();
      return rows.map(aliasFromRow);
    });
  }

  putAlias(functionName: string, alias: string, input: AliasInput): Promise<{ alias: Alias; created: boolean }> {
    return this.#access.run(`set alias ${alias} of function ${functionName}`, async () => {
      validateAliasName(alias);
      const weights = validateWeights(input.weights);
      const stickyHeader = validateStickyHeader(input.stickyHeader);
      return this.#access.write(async (trx) => {
        await lockFunction(trx, functionName);
        await existingFunction(trx, functionName);
        await requireUsableVersions(
          trx,
          functionName,
          weights.map((entry) => entry.version),
        );
        await refuseWhileRolloutRuns(trx, functionName, `change alias ${alias} of function ${functionName}`, alias);
        await refuseAliasOverLimit(trx, functionName, alias);
        const created = await writeAliasWeights(trx, functionName, alias, weights, Date.now(), stickyHeader);
        // Written just above, in this transaction.
        const row = await selectAlias(trx, functionName, alias);
        return { alias: aliasFromRow(row!), created };
      });
    });
  }

  deleteAlias(functionName: string, alias: string): Promise<boolean> {
    return this.#access.run(`delete alias ${alias} of function ${functionName}`, async () => {
      if (alias === liveAlias) {
        throw new PlatformError(
          'CONFLICT',
          `alias ${liveAlias} cannot be deleted: every function has one (point it at other versions instead)`,
        );
      }
      if (!isAliasName(alias)) return false;
      return this.#access.write(async (trx) => {
        await lockFunction(trx, functionName);
        await refuseWhileRolloutRuns(trx, functionName, `delete alias ${alias} of function ${functionName}`, alias);
        const result = await trx
          .deleteFrom('aliases')
          .where('function_name', '=', functionName)
          .where('name', '=', alias)
          .executeTakeFirst();
        return result.numDeletedRows > 0n;
      });
    });
  }

  startRollout(input: NewRollout): Promise<Rollout> {
    const { functionName, alias, version } = input;
    return this.#access.run(`start a rollout of version ${version} of function ${functionName}`, async () => {
      validateAliasName(alias);
      if (typeof version !== 'number' || !isVersionNumber(version)) {
        throw new PlatformError('BAD_REQUEST', `version must be a version number, got ${JSON.stringify(version)}`);
      }
      const settings = validateRolloutSettings(input.settings);
      return this.#access.write(async (trx) => {
        await lockFunction(trx, functionName);
        const fn = await existingFunction(trx, functionName);
        const current = await selectAlias(trx, functionName, alias);
        if (current === undefined) {
          throw new PlatformError('NOT_FOUND', `function ${functionName} has no alias ${alias}`);
        }
        await requireUsableVersions(trx, functionName, [version]);
        const running = await runningRollout(trx, functionName);
        if (running !== undefined) {
          throw new PlatformError(
            'CONFLICT',
            `rollout ${running.id} of version ${Number(running.version)} of function ${functionName} is running already (one at a time: promote or abort it first)`,
            { details: { rolloutId: running.id } },
          );
        }
        const weights = weightsFromJson(current.weights);
        const others = weights.filter((entry) => entry.version !== version);
        if (others.length === 0) {
          throw new PlatformError(
            'CONFLICT',
            `version ${version} already has all of alias ${alias}'s traffic (function ${functionName})`,
          );
        }
        const baseline = primaryVersion(others);
        // Strictly after the function's previous rollout, so that newest first is an order even within a millisecond.
        const previous = await trx
          .selectFrom('rollouts')
          .select('created_at')
          .where('function_name', '=', functionName)
          .orderBy('created_at', 'desc')
          .limit(1)
          .executeTakeFirst();
        const now = Math.max(Date.now(), previous === undefined ? 0 : intFromDb(previous.created_at, 'created_at') + 1);
        const firstStep = settings.steps[0]!;
        const history: RolloutEvent[] = [
          {
            at: new Date(now),
            step: firstStep,
            canary: { ...noFigures },
            baseline: { ...noFigures },
            decision: 'started',
            reason: `version ${version} takes ${firstStep}% of alias ${alias}, version ${baseline} the rest`,
          },
        ];
        const row = {
          id: randomBytes(8).toString('hex'),
          function_name: functionName,
          incarnation: fn.incarnation,
          alias,
          version,
          baseline,
          state: 'running',
          step_index: 0,
          settings: JSON.stringify(settings),
          step_started_at: now,
          revision: 1,
          history: historyToJson(history),
          created_at: now,
          updated_at: now,
          ended_at: null,
          running_function: functionName,
        } satisfies Insertable<RolloutsTable>;
        // A concurrent start that got past the check above makes this a unique violation; the retry then finds it.
        await trx.insertInto('rollouts').values(row).execute();
        await writeAliasWeights(trx, functionName, alias, stepWeights(baseline, version, firstStep), now);
        return rolloutFromRow(row);
      });
    });
  }

  getRollout(functionName: string, id: string): Promise<Rollout | null> {
    return this.#access.run(`read rollout ${id} of function ${functionName}`, async () => {
      const row = await selectRollout(this.#access.db, functionName, id);
      return row === undefined ? null : rolloutFromRow(row);
    });
  }

  listRollouts(functionName: string, limit: number = maxRolloutsListed): Promise<Rollout[]> {
    return this.#access.run(`list rollouts of function ${functionName}`, async () => {
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > maxRolloutsListed) {
        throw new PlatformError('BAD_REQUEST', `limit must be a whole number from 1 to ${maxRolloutsListed}`);
      }
      const rows = await this.#access.db
        .selectFrom('rollouts')
        .selectAll()
        .where('function_name', '=', functionName)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
      return rows.map(rolloutFromRow);
    });
  }

  runningRollouts(): Promise<Rollout[]> {
    return this.#access.run('list running rollouts', async () => {
      const rows = await this.#access.db
        .selectFrom('rollouts')
        .selectAll()
        .where('running_function', 'is not', null)
        .orderBy('function_name')
        .execute();
      return rows.map(rolloutFromRow);
    });
  }

  updateRollout(
    functionName: string,
    id: string,
    expectedRevision: number,
    change: RolloutChange,
  ): Promise<{ applied: boolean; rollout: Rollout | null }> {
    return this.#access.run(`update rollout ${id} of function ${functionName}`, async () => {
      if (!rolloutStates.has(change.state)) {
        throw new PlatformError('BAD_REQUEST', `a rollout's state is one of ${[...rolloutStates].join(', ')}`);
      }
      const weights = validateWeights(change.weights);
      const stepStartedAt = millisFromDate(change.stepStartedAt, 'stepStartedAt');
      const events = change.events.map(checkedEvent);
      return this.#access.write(async (trx) => {
        await lockFunction(trx, functionName);
        const row = await selectRollout(trx, functionName, id);
        if (row === undefined) return { applied: false, rollout: null };
        if (Number(row.revision) !== expectedRevision) return { applied: false, rollout: rolloutFromRow(row) };
        const rollout = rolloutFromRow(row);
        if (rollout.state !== 'running') {
          throw new PlatformError('CONFLICT', `rollout ${id} of function ${functionName} has ended (${rollout.state})`);
        }
        const steps = rollout.settings.steps;
        if (!Number.isInteger(change.stepIndex) || change.stepIndex < 0 || change.stepIndex >= steps.length) {
          throw new PlatformError(
            'BAD_REQUEST',
            `stepIndex must be from 0 to ${steps.length - 1}, got ${String(change.stepIndex)}`,
          );
        }
        // The alias's versions and the rollout's own passed the secret check when they got traffic, and
        // `deleteSecret` has refused their secrets since: going back to the baseline can never fail on one.
        const vetted = new Set([
          ...((await aliasVersionsOf(trx, functionName, rollout.alias)) ?? []),
          rollout.baseline,
          rollout.version,
        ]);
        await requireUsableVersions(
          trx,
          functionName,
          weights.map((entry) => entry.version),
          vetted,
        );
        const now = Date.now();
        const running = change.state === 'running';
        const updated: RolloutRow = {
          ...row,
          state: change.state,
          step_index: change.stepIndex,
          step_started_at: stepStartedAt,
          revision: Number(row.revision) + 1,
          history: historyToJson([...rollout.history, ...events]),
          updated_at: now,
          ended_at: running ? null : now,
          running_function: running ? functionName : null,
        };
        await trx
          .updateTable('rollouts')
          .set({
            state: updated.state,
            step_index: updated.step_index,
            step_started_at: stepStartedAt,
            revision: updated.revision,
            history: updated.history,
            updated_at: now,
            ended_at: running ? null : now,
            running_function: updated.running_function,
          })
          .where('id', '=', id)
          .execute();
        await writeAliasWeights(trx, functionName, rollout.alias, weights, now);
        return { applied: true, rollout: rolloutFromRow(updated) };
      });
    });
  }

  versionFigures(
    functionName: string,
    since: Date,
    versions?: readonly number[],
  ): Promise<Map<number, VersionFigures>> {
    return this.#access.run(`read the figures of function ${functionName}`, async () => {
      const from = millisFromDate(since, 'since');
      const figures = new Map<number, VersionFigures>();
      const wanted = versions === undefined ? undefined : [...new Set(versions)];
      if (wanted?.length === 0) return figures;
      await this.#access.recordsVisible();
      const db = this.#access.db;
      // Throttled calls never ran the version: they say nothing of it. Counted by aggregate over the
      // (function_name, created_at) or (function_name, version, created_at) index: no row is sorted.
      let counts = db
        .selectFrom('invocations')
        .select((eb) => [
          'version',
          eb.fn.countAll<BigIntValue>().as('requests'),
          sql<BigIntValue | null>`sum(case when status in (${sql.join([...rolloutErrorStatuses])}) then 1 else 0 end)`.as(
            'errors',
          ),
        ])
        .where('function_name', '=', functionName)
        .where('created_at', '>=', from)
        .where('status', '<>', 'throttled');
      // A list too long for one statement's parameters is applied below instead.
      if (wanted !== undefined && wanted.length <= versionsPerQuery) counts = counts.where('version', 'in', wanted);
      const only = wanted === undefined ? undefined : new Set(wanted);
      for (const row of await counts.groupBy('version').execute()) {
        const version = Number(row.version);
        if (only !== undefined && !only.has(version)) continue;
        const p99Ms = await this.#recentP99(functionName, version, from);
        figures.set(version, {
          requests: Number(row.requests),
          errors: row.errors === null ? 0 : Number(row.errors),
          p99Ms,
        });
      }
      return figures;
    });
  }

  /**
   * The p99 duration of a version's most recent `p99SampleSize` warm invocations at or after `from` (a new version's
   * first calls on each of its sandboxes run cold code: counted, they would fail every canary that scales out), read
   * newest first
   * through the (function_name, version, created_at) index. p99 is the duration at rank ceil(0.99 n) in ascending
   * order: the row whose rank r has (r - 1) * 100 < 99 n <= r * 100, in integer arithmetic every engine computes alike.
   */
  async #recentP99(functionName: string, version: number, from: number): Promise<number | null> {
    const result = await sql<{ p99: number | string | null }>`select
        max(case when rn * 100 >= n * 99 and (rn - 1) * 100 < n * 99 then duration_ms end) as p99
      from (
        select duration_ms, row_number() over (order by duration_ms) as rn, count(*) over () as n
        from (
          select duration_ms from invocations
          where function_name = ${functionName} and version = ${version} and created_at >= ${from}
            and status <> ${'throttled'} and start_kind = ${'warm'}
          order by created_at desc
          limit ${sql.lit(p99SampleSize)}
        ) recent
      ) ranked`.execute(this.#access.db);
    const p99 = result.rows[0]?.p99;
    return p99 === null || p99 === undefined ? null : Number(p99);
  }

  servedVersions(now: Date): Promise<Map<string, ServedVersions>> {
    return this.#access.run('read the versions in service', async () => {
      const at = millisFromDate(now, 'now');
      const db = this.#access.db;
      const aliases = await db
        .selectFrom('aliases as a')
        .innerJoin('functions as f', 'f.name', 'a.function_name')
        .select(['a.function_name', 'a.weights', 'f.incarnation'])
        .execute();
      const rollouts = await db
        .selectFrom('rollouts')
        .select(['function_name', 'incarnation', 'version', 'baseline', 'state', 'settings', 'ended_at'])
        .where((eb) =>
          eb.or([
            eb('running_function', 'is not', null),
            eb.and([eb('state', '=', 'promoted'), eb('ended_at', '>', at - maxRollbackWindowMs)]),
          ]),
        )
        .execute();
      const serving = new Map<string, { incarnation: string; serving: Set<number>; retained: Set<number> }>();
      for (const row of aliases) {
        let entry = serving.get(row.function_name);
        if (entry === undefined) {
          entry = { incarnation: row.incarnation, serving: new Set(), retained: new Set() };
          serving.set(row.function_name, entry);
        }
        for (const { version } of weightsFromJson(row.weights)) entry.serving.add(version);
      }
      for (const row of rollouts) {
        const entry = serving.get(row.function_name);
        if (entry === undefined || entry.incarnation !== row.incarnation) continue;
        if (row.state === 'running') {
          entry.retained.add(Number(row.version));
          entry.retained.add(Number(row.baseline));
          continue;
        }
        const settings = JSON.parse(row.settings) as RolloutSettings;
        const endedAt = row.ended_at === null ? 0 : intFromDb(row.ended_at, 'rollouts.ended_at');
        if (at < endedAt + settings.rollbackWindowSeconds * 1000) entry.retained.add(Number(row.baseline));
      }
      const served = new Map<string, ServedVersions>();
      for (const [name, entry] of [...serving].sort(([a], [b]) => (a < b ? -1 : 1))) {
        served.set(name, {
          incarnation: entry.incarnation,
          serving: [...entry.serving].sort(ascending),
          retained: [...entry.retained].filter((version) => !entry.serving.has(version)).sort(ascending),
        });
      }
      return served;
    });
  }
}

function ascending(a: number, b: number): number {
  return a - b;
}

function selectAlias(db: DbExecutor, functionName: string, alias: string): Promise<AliasRow | undefined> {
  return db
    .selectFrom('aliases')
    .selectAll()
    .where('function_name', '=', functionName)
    .where('name', '=', alias)
    .executeTakeFirst();
}

function selectRollout(db: DbExecutor, functionName: string, id: string): Promise<RolloutRow | undefined> {
  return db
    .selectFrom('rollouts')
    .selectAll()
    .where('function_name', '=', functionName)
    .where('id', '=', id)
    .executeTakeFirst();
}

async function aliasVersionsOf(
  trx: Transaction<Database>,
  functionName: string,
  alias: string,
): Promise<number[] | undefined> {
  const row = await selectAlias(trx, functionName, alias);
  return row === undefined ? undefined : weightsFromJson(row.weights).map((entry) => entry.version);
}

/**
 * Throws NOT_FOUND naming the versions of `versions` that the function does not have, and INVALID_CONFIG naming
 * the secrets that those not in `vetted` (already in the alias, so already checked) name and that do not exist,
 * after taking the existing ones' locks (`requireSecrets`): a concurrent `deleteSecret` then sees the alias.
 */
async function requireUsableVersions(
  trx: Transaction<Database>,
  functionName: string,
  versions: readonly number[],
  vetted: ReadonlySet<number> = new Set(),
): Promise<void> {
  const rows: { version: number; config: string }[] = [];
  for (let start = 0; start < versions.length; start += versionsPerQuery) {
    const chunk = versions.slice(start, start + versionsPerQuery);
    rows.push(
      ...(await trx
        .selectFrom('function_versions')
        .select(['version', 'config'])
        .where('function_name', '=', functionName)
        .where('version', 'in', chunk)
        .execute()),
    );
  }
  const found = new Set(rows.map((row) => Number(row.version)));
  const missing = versions.filter((version) => !found.has(version));
  if (missing.length > 0) {
    const latest = await latestVersion(trx, functionName);
    throw new PlatformError(
      'NOT_FOUND',
      `function ${functionName} has no version ${missing.join(', ')} (${latest === 0 ? 'it has none' : `versions are 1 to ${latest}`})`,
      { details: { missingVersions: missing } },
    );
  }
  const named = new Map<number, string[]>();
  for (const row of rows) {
    if (vetted.has(Number(row.version))) continue;
    const secrets = Object.values(configFromJson(row.config).secrets);
    if (secrets.length > 0) named.set(Number(row.version), secrets);
  }
  if (named.size === 0) return;
  const all = Object.fromEntries([...new Set([...named.values()].flat())].map((secret) => [secret, secret]));
  try {
    await requireSecrets(trx, functionName, all);
  } catch (err) {
    if (!isPlatformError(err, 'INVALID_CONFIG')) throw err;
    const absent = new Set(err.details['missingSecrets'] as string[]);
    const which = [...named]
      .filter(([, secrets]) => secrets.some((secret) => absent.has(secret)))
      .map(([version]) => version)
      .sort(ascending);
    throw new PlatformError(
      'INVALID_CONFIG',
      `version ${which.join(', ')} of function ${functionName} ${which.length === 1 ? 'names' : 'name'} ${absent.size === 1 ? 'a secret that does' : 'secrets that do'} not exist: ${[...absent].sort().join(', ')} (set ${absent.size === 1 ? 'it' : 'them'} first: savassan secret set NAME)`,
      { details: { missingSecrets: [...absent].sort(), versions: which } },
    );
  }
}

function checkedEvent(event: RolloutEvent): RolloutEvent {
  millisFromDate(event.at, 'event.at');
  return event;
}

function historyToJson(history: readonly RolloutEvent[]): string {
  return JSON.stringify(history.map((event) => ({ ...event, at: event.at.toISOString() })));
}

function historyFromJson(json: string): RolloutEvent[] {
  const parsed = JSON.parse(json) as (Omit<RolloutEvent, 'at'> & { at: string })[];
  return parsed.map((event) => ({ ...event, at: new Date(event.at) }));
}

export function aliasFromRow(row: AliasRow): Alias {
  return {
    functionName: row.function_name,
    name: row.name,
    weights: weightsFromJson(row.weights),
    stickyHeader: row.sticky_header,
    createdAt: dateFromDb(row.created_at, 'aliases.created_at'),
    updatedAt: dateFromDb(row.updated_at, 'aliases.updated_at'),
  };
}

export function rolloutFromRow(row: RolloutRow): Rollout {
  return {
    id: row.id,
    functionName: row.function_name,
    incarnation: row.incarnation,
    alias: row.alias,
    version: Number(row.version),
    baseline: Number(row.baseline),
    state: row.state as RolloutState,
    stepIndex: Number(row.step_index),
    settings: JSON.parse(row.settings) as RolloutSettings,
    stepStartedAt: dateFromDb(row.step_started_at, 'rollouts.step_started_at'),
    revision: Number(row.revision),
    history: historyFromJson(row.history),
    createdAt: dateFromDb(row.created_at, 'rollouts.created_at'),
    updatedAt: dateFromDb(row.updated_at, 'rollouts.updated_at'),
    endedAt: row.ended_at === null ? null : dateFromDb(row.ended_at, 'rollouts.ended_at'),
  };
}

/** Throws CONFLICT naming the limit when `alias` is new and the function has `maxAliasesPerFunction` already. */
async function refuseAliasOverLimit(trx: Transaction<Database>, functionName: string, alias: string): Promise<void> {
  const rows = await trx
    .selectFrom('aliases')
    .select('name')
    .where('function_name', '=', functionName)
    .limit(maxAliasesPerFunction + 1)
    .execute();
  if (rows.length < maxAliasesPerFunction || rows.some((row) => row.name === alias)) return;
  throw new PlatformError(
    'CONFLICT',
    `function ${functionName} has ${maxAliasesPerFunction} aliases, the most a function may have: delete one first`,
    { details: { maxAliases: maxAliasesPerFunction } },
  );
}
