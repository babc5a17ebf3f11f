import { sql } from 'kysely';
import type { CompiledQuery, Insertable, Kysely, Transaction } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { silentLogger } from '../../core/logger.js';
import { functionLimits, validateFunctionName } from '../../core/function-config.js';
import type { AsyncSettings, FunctionConfig } from '../../core/function-config.js';
import { validateSecretName } from '../../core/secrets.js';
import type { InvocationQuery, MetadataStore, NewVersion } from '../../core/ports/metadata-store.js';
import { liveAlias } from '../../core/types.js';
import type {
  FunctionRecord,
  FunctionVersion,
  InvocationRecord,
  InvocationStatus,
  SecretListing,
  SecretRecord,
  SerializedError,
  StartKind,
} from '../../core/types.js';
import type { InvocationStatsBucket, InvocationStatsQuery } from '../../core/invocation-stats.js';
import { createMigrator, newIncarnation } from './migrations.js';
import { sqlInvocationStats } from './sql-invocation-stats.js';
import { columnLengths } from './schema.js';
import type {
  BigIntValue,
  Database,
  DbExecutor,
  FunctionRow,
  FunctionVersionRow,
  InvocationRow,
  InvocationsTable,
  SecretRow,
} from './schema.js';
import { deleteTrafficOf, refuseWhileRolloutRuns, versionsInService, writeAliasWeights } from './traffic-rows.js';

export interface SqlMetadataStoreOptions {
  /** Most invocation records written in one group-commit transaction. Default 256. */
  maxInvocationBatch?: number;
  /**
   * Most journalled records waiting for their commit (default 50,000). Past it, while the database refuses commits,
   * records are no longer acknowledged from the journal: they go straight to the database and fail with it, so a
   * long outage costs errors, not memory.
   */
  maxJournalBacklog?: number;
  /** Destroy the Kysely instance (and its connections) on `close()`. Default true: the store owns it. */
  destroyOnClose?: boolean;
  /**
   * Runs a batch of write statements as one transaction in one step, when the driver can do better than
   * Kysely's statement-by-statement transaction (the SQLite worker does it in one round trip).
   */
  executeBatch?: ((statements: CompiledQuery[]) => Promise<void>) | undefined;
  /**
   * Acknowledge invocation records once appended here (SQLite's `RecordJournal`), and commit them to the database
   * right after, in batches. Reads of invocations first wait for the records acknowledged before them. A record
   * whose id is already stored is then dropped (the first one stays) rather than rejected. Closed by `close()`.
   */
  journal?: InvocationJournal | undefined;
  /**
   * Makes every committed transaction durable against an OS crash. Called after each deploy, current-version
   * change and delete commits, when the database's ordinary commits are only crash-safe for the process
   * (SQLite with `synchronous=NORMAL`: a WAL checkpoint).
   */
  durabilityBarrier?: (() => Promise<void>) | undefined;
  /** Names the database in the messages of failed calls (`PostgreSQL at 127.0.0.1:5432`); never with a password. */
  backend?: string | undefined;
  /** Where the journal's commit failures and dropped records are logged. */
  logger?: Logger | undefined;
  /**
   * Other processes share the database (PostgreSQL, MySQL) and may delete a function while records of it wait in
   * this store's journal: journalled records are then committed only for functions that still exist, checked under
   * a share lock on their rows, so that a delete elsewhere either waits for the commit (and deletes the records with
   * the function) or drops them. `engine` picks the SQL spellings.
   */
  sharedDatabase?: { engine: 'PostgreSQL' | 'MySQL' } | undefined;
}

export interface InvocationJournal {
  /** Appends rows in one write, safe from then on; returns the ticket to `release` them by. Throws if it cannot. */
  append(rows: Insertable<InvocationsTable>[]): number;
  /** `count` rows appended under `ticket` are committed to the database. */
  release(ticket: number, count: number): void;
  /** The function is being deleted: rows of it appended so far must not come back from the journal. */
  markDeleted(functionName: string): void;
  close(): void;
}

export const invocationListLimits = { default: 50, max: 1000 } as const;

/** Longest error fields stored, in characters, so a serialized error fits any engine's `text` (MySQL: 64 KiB). */
export const storedErrorLimits = { name: 256, code: 256, message: 4096, stack: 8192 } as const;

const invocationStatuses: ReadonlySet<string> = new Set<InvocationStatus>([
  'success',
  'error',
  'timeout',
  'crash',
  'oom',
  'init-error',
  'throttled',
]);

const defaultMaxInvocationBatch = 256;
const defaultMaxJournalBacklog = 50_000;
/** Rows per INSERT statement: keeps bound parameters under SQLite's historical limit of 999. */
const rowsPerInsert = 64;
const maxWriteAttempts = 5;
/**
 * How long journalled records wait for others to share their commit. Nobody waits on it: the records are acknowledged,
 * and a read that needs them commits them at once.
 */
const journalCommitDelayMs = 50;

/** What a store over the same database (`SqlTrafficStore`) shares with a `SqlMetadataStore`. */
export interface SqlStoreAccess {
  readonly db: Kysely<Database>;
  /** Runs one operation as the metadata store's own: refused once it is closed, awaited by its close, errors mapped. */
  run<T>(action: string, operation: () => Promise<T>): Promise<T>;
  /**
   * Runs a write transaction, again when it lost a race, then makes it durable (the store's durability barrier).
   * `flush: false` leaves out the barrier: the transaction is committed (a crash of the process keeps it) but, with
   * SQLite's `process` durability, reaches the disk at the next barrier or checkpoint; for the hot writes whose loss
   * in a crash of the machine the caller recovers from (a workflow node's transitions).
   */
  write<T>(body: (trx: Transaction<Database>) => Promise<T>, options?: { flush?: boolean }): Promise<T>;
  /** Resolves once every invocation record acknowledged so far is committed. */
  recordsVisible(): Promise<void>;
}

interface PendingInvocation {
  row: Insertable<InvocationsTable>;
  resolve: () => void;
  reject: (err: PlatformError) => void;
}

/**
 * `MetadataStore` over Kysely, shared by the SQLite, PostgreSQL and MySQL adapters: they differ only in the
 * dialect they build the `Kysely<Database>` with. Construction does no I/O; call `migrate()` before use.
 *
 * Invocation records are written with group commit: records submitted in the same event-loop turn share
 * one transaction, and each `recordInvocation` promise settles only once that transaction has committed. With a
 * `journal` (the SQLite file store) a record settles once appended to it instead, and is committed in a batch
 * shortly after; reads of invocations wait for what was acknowledged before them.
 */
export class SqlMetadataStore implements MetadataStore {
  readonly #db: Kysely<Database>;
  readonly #maxInvocationBatch: number;
  readonly #destroyOnClose: boolean;
  readonly #executeBatch: SqlMetadataStoreOptions['executeBatch'];
  readonly #journal: InvocationJournal | undefined;
  readonly #maxJournalBacklog: number;
  readonly #barrier: () => Promise<void>;
  readonly #backend: string | undefined;
  readonly #logger: Logger;
  readonly #sharedDatabase: SqlMetadataStoreOptions['sharedDatabase'];
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;
  /** Operations and batch writes under way; `close()` waits for them before destroying the connection. */
  readonly #active = new Set<Promise<void>>();
  #pending: PendingInvocation[] = [];
  /** Records for the journal, written together at the end of this turn of the event loop. */
  #toJournal: PendingInvocation[] = [];
  #flushScheduled = false;
  /** Journalled (acknowledged) records not yet committed, in order, with their journal tickets. */
  #journalled: { row: Insertable<InvocationsTable>; ticket: number; seq: number }[] = [];
  /** Records journalled so far and, of those, committed (or left out: their function was deleted). */
  #journalledCount = 0;
  #committedCount = 0;
  /** Reads waiting for the records acknowledged before them. */
  #visibilityWaiters: { upTo: number; resolve: () => void }[] = [];
  /** Functions deleted while records of theirs were journalled: the journal position of the delete. */
  readonly #deletedAt = new Map<string, number>();
  /** The loop committing journalled records while it runs, and the timer that starts it. */
  #committer: Promise<void> | undefined;
  #commitTimer: NodeJS.Timeout | undefined;
  /** The batch writer loop while it runs. */
  #writer: Promise<void> | undefined;

  constructor(db: Kysely<Database>, options: SqlMetadataStoreOptions = {}) {
    this.#db = db;
    this.#maxInvocationBatch = Math.max(1, options.maxInvocationBatch ?? defaultMaxInvocationBatch);
    this.#destroyOnClose = options.destroyOnClose ?? true;
    this.#executeBatch = options.executeBatch;
    this.#journal = options.journal;
    this.#maxJournalBacklog = Math.max(1, options.maxJournalBacklog ?? defaultMaxJournalBacklog);
    this.#barrier = options.durabilityBarrier ?? (() => Promise.resolve());
    this.#backend = options.backend;
    this.#sharedDatabase = options.sharedDatabase;
    this.#logger = options.logger ?? silentLogger;
  }

  /** For a store over the same database, which lives and closes with this one (`SqlTrafficStore`). */
  shared(): SqlStoreAccess {
    return {
      db: this.#db,
      run: (action, operation) => this.#run(action, operation),
      write: (body, options) => this.#write(body, options?.flush ?? true),
      recordsVisible: () => this.#recordsVisible(),
    };
  }

  migrate(): Promise<void> {
    return this.#run('migrate the metadata database', async () => {
      const { error, results } = await createMigrator(this.#db).migrateToLatest();
      if (error !== undefined) {
        const failed = results?.find((result) => result.status === 'Error');
        const which = failed === undefined ? '' : ` ${failed.migrationName}`;
        throw new PlatformError('UNAVAILABLE', `migration${which} failed: ${errorMessage(error)}`, { cause: error });
      }
    });
  }

  deployVersion(input: NewVersion): Promise<{ function: FunctionRecord; version: FunctionVersion; created: boolean }> {
    return this.#run(`deploy function ${input.functionName}`, async () => {
      validateFunctionName(input.functionName);
      // Fast path for an unchanged redeploy: one consistent read, no transaction, nothing written.
      const current = await this.#currentOf(input.functionName);
      if (current !== null && current.version.contentHash === input.contentHash) return { ...current, created: false };
      return this.#write((trx) => deployIn(trx, input));
    });
  }

  getFunction(name: string): Promise<FunctionRecord | null> {
    return this.#run(`read function ${name}`, async () => {
      const row = await this.#db.selectFrom('functions').selectAll().where('name', '=', name).executeTakeFirst();
      return row === undefined ? null : functionFromRow(row);
    });
  }

  listFunctions(): Promise<FunctionRecord[]> {
    return this.#run('list functions', async () => {
      const rows = await this.#db.selectFrom('functions').selectAll().orderBy('name').execute();
      return rows.map(functionFromRow);
    });
  }

  deleteFunction(name: string): Promise<boolean> {
    return this.#run(`delete function ${name}`, async () => {
      // Records acknowledged before the delete go with it: wait for them to be committed, so the transaction
      // deletes them; once it has committed, the journal and the committer leave out any still waiting.
      const journalledBefore = this.#journalledCount;
      await this.#recordsVisible();
      const deleted = await this.#retrying(() =>
        this.#db.transaction().execute(async (trx) => {
          await lockFunction(trx, name);
          // Invocations are not foreign keys (records can arrive after a delete), so clear them either way.
          await trx.deleteFrom('invocations').where('function_name', '=', name).execute();
          await deleteTrafficOf(trx, name);
          await trx.deleteFrom('function_versions').where('function_name', '=', name).execute();
          const result = await trx.deleteFrom('functions').where('name', '=', name).executeTakeFirst();
          return result.numDeletedRows > 0n;
        }),
      );
      this.#forgetJournalled(name, journalledBefore);
      await this.#barrier();
      return deleted;
    });
  }

  getVersion(name: string, version: number): Promise<FunctionVersion | null> {
    return this.#run(`read version ${version} of function ${name}`, async () => {
      if (!isVersionNumber(version)) return null;
      const row = await selectVersion(this.#db, name, version);
      return row === undefined ? null : versionFromRow(row);
    });
  }

  listVersions(name: string): Promise<FunctionVersion[]> {
    return this.#run(`list versions of function ${name}`, async () => {
      const rows = await this.#db
        .selectFrom('function_versions')
        .selectAll()
        .where('function_name', '=', name)
        .orderBy('version')
        .execute();
      return rows.map(versionFromRow);
    });
  }

  isCodeInUse(codeSha256: string): Promise<boolean> {
    return this.#run(`check whether code ${codeSha256} is in use`, async () => {
      const row = await this.#db
        .selectFrom('function_versions')
        .select('version')
        .where('code_sha256', '=', codeSha256)
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    });
  }

  setCurrentVersion(name: string, version: number): Promise<FunctionRecord> {
    return this.#run(`set the current version of function ${name}`, () =>
      this.#write(async (trx) => {
        await lockFunction(trx, name);
        const fn = await existingFunction(trx, name);
        const target = isVersionNumber(version) ? await selectVersion(trx, name, version) : undefined;
        if (target === undefined) {
          const latest = await latestVersion(trx, name);
          throw new PlatformError(
            'NOT_FOUND',
            `function ${name} has no version ${String(version)} (versions are 1 to ${latest})`,
          );
        }
        await requireSecrets(trx, name, configFromJson(target.config).secrets);
        await refuseWhileRolloutRuns(trx, name, `make version ${version} of function ${name} current`);
        const now = Date.now();
        await writeAliasWeights(trx, name, liveAlias, [{ version, weight: 1 }], now);
        return functionFromRow({ ...fn, current_version: version, updated_at: now });
      }),
    );
  }

  recordInvocation(record: InvocationRecord): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(closedError(`record invocation ${record.id}`));
    let row: Insertable<InvocationsTable>;
    try {
      row = invocationToRow(record);
    } catch (err) {
      return Promise.reject(PlatformError.from(err, 'BAD_REQUEST'));
    }
    if (this.#journal !== undefined && this.#pending.length === 0) {
      // One write(2) for the records of this turn of the event loop: under load, several sandboxes answer in one
      // turn; alone, a record waits only for the rest of the turn (setImmediate runs right after the I/O callbacks).
      return new Promise<void>((resolve, reject) => {
        this.#toJournal.push({ row, resolve, reject });
        if (this.#toJournal.length === 1) setImmediate(this.#writeToJournal);
      });
    }
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ row, resolve, reject });
      if (this.#pending.length >= this.#maxInvocationBatch) {
        this.#flush();
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          this.#flush();
        });
      }
    });
  }

  /**
   * Writes invocation rows read back from a journal (crash recovery). A row whose id is already stored is skipped,
   * and so is a row that is not a valid record or that the database refuses (a constraint): their number is
   * returned. Any other failure (the database is busy, the disk is full) throws, and nothing may be discarded.
   */
  importInvocationRows(rows: readonly Record<string, unknown>[]): Promise<number> {
    return this.#run('import journalled invocation records', async () => {
      const valid: Insertable<InvocationsTable>[] = [];
      for (const row of rows) {
        try {
          valid.push(invocationToRow(invocationFromRow(row as unknown as InvocationRow)));
        } catch {
          // Not a record this store wrote: leave it out.
        }
      }
      let skipped = rows.length - valid.length;
      for (let start = 0; start < valid.length; start += this.#maxInvocationBatch) {
        skipped += await this.#commitRows(valid.slice(start, start + this.#maxInvocationBatch));
      }
      return skipped;
    });
  }

  getInvocation(id: string): Promise<InvocationRecord | null> {
    return this.#run(`read invocation ${id}`, async () => {
      await this.#recordsVisible();
      const row = await this.#db.selectFrom('invocations').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : invocationFromRow(row);
    });
  }

  listInvocations(query: InvocationQuery): Promise<InvocationRecord[]> {
    return this.#run('list invocations', async () => {
      const limit = compileLimit(query.limit);
      await this.#recordsVisible();
      let select = this.#db.selectFrom('invocations').selectAll();
      if (query.functionName !== undefined) select = select.where('function_name', '=', query.functionName);
      if (query.afterCreatedAt !== undefined) {
        select = select.where('created_at', '>', millisFromDate(query.afterCreatedAt, 'afterCreatedAt'));
      }
      const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map(invocationFromRow);
    });
  }

  invocationStats(query: InvocationStatsQuery): Promise<InvocationStatsBucket[]> {
    return this.#run('read invocation stats', async () => {
      await this.#recordsVisible();
      return sqlInvocationStats(this.#db, query);
    });
  }

  putSecret(name: string, value: string): Promise<{ secret: SecretRecord; created: boolean }> {
    return this.#run(`set secret ${name}`, async () => {
      validateSecretName(name);
      if (typeof value !== 'string' || value.length === 0 || value.length > columnLengths.secretValue) {
        throw new PlatformError(
          'BAD_REQUEST',
          `a stored secret value is 1 to ${columnLengths.secretValue} characters (secret ${name})`,
        );
      }
      return this.#write(async (trx) => {
        const now = Date.now();
        const updated = await trx
          .updateTable('secrets')
          .set({ value, updated_at: now })
          .where('name', '=', name)
          .executeTakeFirst();
        if (updated.numUpdatedRows > 0n) {
          const row = await trx
            .selectFrom('secrets')
            .select(['name', 'created_at', 'updated_at'])
            .where('name', '=', name)
            .executeTakeFirstOrThrow();
          return { secret: secretFromRow(row), created: false };
        }
        // A concurrent first put makes this a unique violation; the retry then updates the row it wrote.
        await trx.insertInto('secrets').values({ name, value, created_at: now, updated_at: now }).execute();
        return { secret: secretFromRow({ name, created_at: now, updated_at: now }), created: true };
      });
    });
  }

  listSecrets(): Promise<SecretListing[]> {
    return this.#run('list secrets', async () => {
      const [rows, users] = await Promise.all([
        this.#db.selectFrom('secrets').select(['name', 'created_at', 'updated_at']).orderBy('name').execute(),
        secretUsers(this.#db),
      ]);
      return rows.map((row) => ({ ...secretFromRow(row), usedBy: users.get(row.name) ?? [] }));
    });
  }

  secretValues(names: readonly string[]): Promise<Map<string, string>> {
    return this.#run('read secret values', async () => {
      const wanted = [...new Set(names)];
      if (wanted.length === 0) return new Map<string, string>();
      const rows = await this.#db.selectFrom('secrets').select(['name', 'value']).where('name', 'in', wanted).execute();
      return new Map(rows.map((row) => [row.name, row.value]));
    });
  }

  deleteSecret(name: string): Promise<boolean> {
    return this.#run(`delete secret ${name}`, async () => {
      const deleted = await this.#retrying(() =>
        this.#db.transaction().execute(async (trx) => {
          // The delete takes the row's lock first: a deploy naming the secret either committed before (and is seen
          // below) or waits for this transaction and then finds the secret gone (`requireSecrets`).
          const result = await trx.deleteFrom('secrets').where('name', '=', name).executeTakeFirst();
          if (result.numDeletedRows === 0n) return false;
          const users = (await secretUsers(trx)).get(name) ?? [];
          if (users.length > 0) {
            throw new PlatformError(
              'CONFLICT',
              `secret ${name} is used by ${users.join(', ')}: ${users.length === 1 ? 'a version its aliases point at names' : 'versions their aliases point at name'} it; move that traffic to versions without it (or delete ${users.length === 1 ? 'the function' : 'the functions'}) first`,
              { details: { usedBy: users } },
            );
          }
          return true;
        }),
      );
      if (deleted) await this.#barrier();
      return deleted;
    });
  }

  /** Idempotent. Writes invocation records still queued, waits for running operations, then disconnects. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closing';
    this.#writeToJournal();
    this.#flush();
    if (this.#journalled.length > 0) this.#commitJournalled();
    while (this.#active.size > 0) await Promise.all([...this.#active]);
    try {
      try {
        this.#journal?.close();
      } finally {
        if (this.#destroyOnClose) await this.#db.destroy();
      }
    } finally {
      this.#state = 'closed';
    }
  }

  /** Run one public operation: refused after close, tracked for close, driver errors mapped. */
  #run<T>(action: string, operation: () => Promise<T>): Promise<T> {
    if (this.#state !== 'open') return Promise.reject(closedError(action));
    const result = operation().catch((err: unknown) => {
      throw platformErrorFromSql(err, action, this.#backend);
    });
    this.#track(result);
    return result;
  }

  #track(promise: Promise<unknown>): void {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    this.#active.add(settled);
    void settled.then(() => this.#active.delete(settled));
  }

  /** Retry a write transaction that lost a race (lock contention, deadlock, concurrent insert of the same key). */
  async #retrying<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (err) {
        const kind = classifySqlError(err);
        if (attempt >= maxWriteAttempts || (kind !== 'unique-violation' && kind !== 'contention')) throw err;
        await sleep(attempt * 10 + Math.random() * 10);
      }
    }
  }

  /** Run a write transaction, again when it lost a race, then make it durable (the durability barrier). */
  async #write<T>(body: (trx: Transaction<Database>) => Promise<T>, flush = true): Promise<T> {
    const result = await this.#retrying(() => this.#db.transaction().execute(body));
    if (flush) await this.#barrier();
    return result;
  }

  /** The function and its current version, read in one statement so they are consistent. */
  async #currentOf(name: string): Promise<{ function: FunctionRecord; version: FunctionVersion } | null> {
    const row = await this.#db
      .selectFrom('functions as f')
      .innerJoin('function_versions as v', (join) =>
        join.onRef('v.function_name', '=', 'f.name').onRef('v.version', '=', 'f.current_version'),
      )
      .select([
        'f.name',
        'f.incarnation as function_incarnation',
        'f.current_version',
        'f.created_at as function_created_at',
        'f.updated_at as function_updated_at',
        'v.function_name',
        'v.incarnation',
        'v.version',
        'v.code_sha256',
        'v.code_size_bytes',
        'v.content_hash',
        'v.config',
        'v.created_at',
      ])
      .where('f.name', '=', name)
      .executeTakeFirst();
    if (row === undefined) return null;
    return {
      function: functionFromRow({
        name: row.name,
        incarnation: row.function_incarnation,
        current_version: row.current_version,
        created_at: row.function_created_at,
        updated_at: row.function_updated_at,
      }),
      version: versionFromRow(row),
    };
  }

  /**
   * Start writing the queued invocation records. Group commit: one batch transaction at a time. Records that arrive while a batch commits wait and go
   * together in the next one, so under load a single commit (and fsync) serves many records instead of
   * small transactions queueing one behind another on the connection.
   */
  #flush(): void {
    if (this.#writer !== undefined) return;
    this.#writer = (async () => {
      while (this.#pending.length > 0) {
        await this.#writeBatch(this.#pending.splice(0, this.#maxInvocationBatch));
      }
    })().finally(() => {
      this.#writer = undefined;
      if (this.#pending.length > 0) this.#flush();
    });
    this.#track(this.#writer);
  }

  async #writeBatch(batch: PendingInvocation[]): Promise<void> {
    if (this.#journal !== undefined && this.#acknowledgeFromJournal(this.#journal, batch)) return;
    try {
      const chunks: Insertable<InvocationsTable>[][] = [];
      for (let start = 0; start < batch.length; start += rowsPerInsert) {
        chunks.push(batch.slice(start, start + rowsPerInsert).map((pending) => pending.row));
      }
      const executeBatch = this.#executeBatch;
      if (executeBatch !== undefined) {
        await executeBatch(chunks.map((rows) => this.#db.insertInto('invocations').values(rows).compile()));
      } else {
        await this.#db.transaction().execute(async (trx) => {
          for (const rows of chunks) await trx.insertInto('invocations').values(rows).execute();
        });
      }
    } catch (err) {
      const [only] = batch;
      if (batch.length === 1 && only !== undefined) {
        only.reject(recordError(err, only.row.id, this.#backend));
        return;
      }
      // One bad record (a duplicate id) must not fail the rest of its batch: write each on its own.
      await Promise.all(batch.map((pending) => this.#writeOne(pending)));
      return;
    }
    for (const pending of batch) pending.resolve();
  }

  /** Journals the records of this turn, or (the journal cannot take them) queues them for the database. */
  readonly #writeToJournal = (): void => {
    const batch = this.#toJournal;
    if (batch.length === 0) return;
    this.#toJournal = [];
    // As many as the backlog has room for; the rest (or all, if the journal cannot take them) go the slow way,
    // straight into the database.
    const room = Math.max(0, this.#maxJournalBacklog - this.#journalled.length);
    const journalled =
      room > 0 && this.#journal !== undefined && this.#acknowledgeFromJournal(this.#journal, batch.slice(0, room));
    const rest = journalled ? batch.slice(room) : batch;
    if (rest.length === 0) return;
    this.#pending.push(...rest);
    this.#flush();
  };

  /** Appends the batch to the journal and acknowledges it; false (nothing done) when the journal cannot take it. */
  #acknowledgeFromJournal(journal: InvocationJournal, batch: PendingInvocation[]): boolean {
    if (this.#journalled.length + batch.length > this.#maxJournalBacklog) return false;
    const rows = batch.map((pending) => pending.row);
    let ticket: number;
    try {
      ticket = journal.append(rows);
    } catch {
      // Disk full or an I/O error: these records go the slow way, straight into the database.
      return false;
    }
    for (const row of rows) this.#journalled.push({ row, ticket, seq: this.#journalledCount++ });
    for (const pending of batch) pending.resolve();
    // Commit in batches: a trip to the database per record would cost the event loop what the journal saved.
    if (this.#journalled.length >= this.#maxInvocationBatch || this.#state !== 'open') this.#commitJournalled();
    else this.#commitTimer ??= setTimeout(() => this.#commitJournalled(), journalCommitDelayMs);
    return true;
  }

  /**
   * Commits journalled records in batches until none are left. They are acknowledged, so a failure is retried; a
   * batch the database refuses for one of its rows (a constraint) is written row by row and the refused rows are
   * dropped and logged, so one bad record cannot hold back the others.
   */
  #commitJournalled(): void {
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    if (this.#committer !== undefined) return;
    this.#committer = (async () => {
      let failures = 0;
      while (this.#journalled.length > 0) {
        const batch = this.#journalled.slice(0, this.#maxInvocationBatch);
        // Rows of a function deleted after they were journalled go with it.
        const rows = batch
          .filter((entry) => entry.seq >= (this.#deletedAt.get(entry.row.function_name) ?? -1))
          .map((entry) => entry.row);
        try {
          await this.#commitRows(rows);
        } catch (err) {
          failures += 1;
          // Reads waiting now go ahead with what is there (they must not hang on an outage); the records stay in
          // the journal and in memory. While closing, give up after a few tries: the next open recovers them.
          this.#releaseReaders();
          if (failures === 1) this.#logger.warn({ err }, 'could not commit journalled invocation records; retrying');
          if (this.#state !== 'open' && failures >= 3) return;
          await sleep(Math.min(1000, 10 * 2 ** failures));
          continue;
        }
        if (failures > 0) this.#logger.info({}, 'journalled invocation records committed again');
        failures = 0;
        this.#journalled.splice(0, batch.length);
        const released = new Map<number, number>();
        for (const { ticket } of batch) released.set(ticket, (released.get(ticket) ?? 0) + 1);
        for (const [ticket, count] of released) this.#journal?.release(ticket, count);
        this.#committedCount += batch.length;
        for (const [name, at] of this.#deletedAt) if (at <= this.#committedCount) this.#deletedAt.delete(name);
        this.#settle();
        // What arrived during this commit waits for its own delay, unless it cannot: a spinning committer would
        // commit a few rows at a time under load, and each commit costs the same few page writes and locks.
        if (!this.#commitIsDue()) break;
      }
    })().finally(() => {
      this.#committer = undefined;
      // While closing, a committer that gave up stays given up: the next open recovers its records.
      if (this.#journalled.length === 0 || this.#state !== 'open') return;
      if (this.#commitIsDue()) this.#commitJournalled();
      else this.#commitTimer ??= setTimeout(() => this.#commitJournalled(), journalCommitDelayMs);
    });
    this.#track(this.#committer);
  }

  /** Whether journalled records must be committed now rather than after the delay: a full batch, a read waiting, or closing. */
  #commitIsDue(): boolean {
    return (
      this.#journalled.length >= this.#maxInvocationBatch ||
      this.#visibilityWaiters.length > 0 ||
      this.#state !== 'open'
    );
  }

  /**
   * One batch of journalled rows (a row already stored is skipped); on a constraint failure, row by row, dropping
   * and logging the rows the database refuses. Returns how many were dropped; any other failure throws.
   */
  async #commitRows(rows: Insertable<InvocationsTable>[]): Promise<number> {
    if (rows.length === 0) return 0;
    try {
      return await this.#insertIgnoringDuplicates(rows);
    } catch (err) {
      if (!isConstraintError(err)) throw err;
    }
    let dropped = 0;
    for (const row of rows) {
      try {
        dropped += await this.#insertIgnoringDuplicates([row]);
      } catch (err) {
        if (!isConstraintError(err)) throw err;
        dropped += 1;
        this.#logger.warn({ err, invocationId: row.id }, 'dropped a journalled invocation record the database refuses');
      }
    }
    return dropped;
  }

  /** Inserts the rows (one already stored is skipped); returns how many were left out as their function is gone. */
  async #insertIgnoringDuplicates(rows: Insertable<InvocationsTable>[]): Promise<number> {
    const mysql = this.#sharedDatabase?.engine === 'MySQL';
    const statements = (kept: Insertable<InvocationsTable>[]): CompiledQuery[] => {
      const compiled: CompiledQuery[] = [];
      for (let start = 0; start < kept.length; start += rowsPerInsert) {
        const insert = this.#db.insertInto('invocations').values(kept.slice(start, start + rowsPerInsert));
        compiled.push(
          (mysql
            ? insert.onDuplicateKeyUpdate({ id: (eb) => eb.ref('invocations.id') })
            : insert.onConflict((conflict) => conflict.column('id').doNothing())
          ).compile(),
        );
      }
      return compiled;
    };
    if (this.#executeBatch !== undefined) {
      await this.#executeBatch(statements(rows));
      return 0;
    }
    const shared = this.#sharedDatabase;
    return this.#db.transaction().execute(async (trx) => {
      let kept = rows;
      if (shared !== undefined) {
        const names = [...new Set(rows.map((row) => row.function_name))].sort();
        const existing = await sql<{ name: string }>`select name from functions where name in (${sql.join(names)})
          order by name ${sql.raw(mysql ? 'lock in share mode' : 'for share')}`.execute(trx);
        const alive = new Set(existing.rows.map((row) => row.name));
        kept = rows.filter((row) => alive.has(row.function_name));
      }
      for (const statement of statements(kept)) await trx.executeQuery(statement);
      return rows.length - kept.length;
    });
  }

  /**
   * After a function's delete has committed: its records journalled before the delete began must not be committed
   * now, nor come back from the journal after a crash. Only after the commit: a delete that fails keeps them all.
   */
  #forgetJournalled(name: string, journalledBefore: number): void {
    if (this.#journal === undefined) return;
    this.#deletedAt.set(name, journalledBefore);
    try {
      this.#journal.markDeleted(name);
    } catch (err) {
      // The delete stands; a crash before these records are committed would bring them back as orphans.
      this.#logger.warn({ err, functionName: name }, 'could not note a function delete in the record journal');
    }
  }

  /** Lets go the reads whose records are all committed. */
  #settle(): void {
    const waiting = this.#visibilityWaiters;
    this.#visibilityWaiters = [];
    for (const waiter of waiting) {
      if (waiter.upTo <= this.#committedCount) waiter.resolve();
      else this.#visibilityWaiters.push(waiter);
    }
  }

  /** Lets every waiting read go, committed or not (the database is refusing commits just now). */
  #releaseReaders(): void {
    const waiting = this.#visibilityWaiters;
    this.#visibilityWaiters = [];
    for (const waiter of waiting) waiter.resolve();
  }

  /** Resolves once every invocation record acknowledged so far is committed (or a commit of it failed). */
  #recordsVisible(): Promise<void> {
    // Records queued for the next flush count too: their callers may already be waiting on them.
    if (this.#pending.length > 0) this.#flush();
    const upTo = this.#journalledCount;
    if (this.#committedCount >= upTo) return Promise.resolve();
    this.#commitJournalled();
    return new Promise((resolve) => this.#visibilityWaiters.push({ upTo, resolve }));
  }

  async #writeOne(pending: PendingInvocation): Promise<void> {
    try {
      await this.#db.insertInto('invocations').values(pending.row).execute();
    } catch (err) {
      pending.reject(recordError(err, pending.row.id, this.#backend));
      return;
    }
    pending.resolve();
  }
}

/** The body of `deployVersion`'s transaction. */
async function deployIn(
  trx: Transaction<Database>,
  input: NewVersion,
): Promise<{ function: FunctionRecord; version: FunctionVersion; created: boolean }> {
  const name = input.functionName;
  const promote = input.promote ?? true;
  await lockFunction(trx, name);
  const fn = await trx.selectFrom('functions').selectAll().where('name', '=', name).executeTakeFirst();
  await requireSecrets(trx, name, input.config.secrets);
  const now = Date.now();
  let version = 1;
  let currentVersion = 1;
  let createdAt = now;
  let incarnation: string;
  if (fn === undefined) {
    incarnation = newIncarnation();
    // A concurrent first deploy makes this a unique violation; the retry then finds the row and locks it.
    await trx
      .insertInto('functions')
      .values({ name, incarnation, current_version: 1, created_at: now, updated_at: now })
      .execute();
  } else {
    incarnation = fn.incarnation;
    const current = await selectVersion(trx, name, fn.current_version);
    if (current !== undefined && current.content_hash === input.contentHash) {
      return { function: functionFromRow(fn), version: versionFromRow(current), created: false };
    }
    version = (await latestVersion(trx, name)) + 1;
    createdAt = intFromDb(fn.created_at, 'functions.created_at');
    if (promote) {
      await refuseWhileRolloutRuns(trx, name, `make version ${version} of function ${name} current`);
      currentVersion = version;
    } else {
      currentVersion = Number(fn.current_version);
      await trx.updateTable('functions').set({ updated_at: now }).where('name', '=', name).execute();
    }
  }
  const row = {
    function_name: name,
    incarnation,
    version,
    code_sha256: input.codeSha256,
    code_size_bytes: input.codeSizeBytes,
    content_hash: input.contentHash,
    config: JSON.stringify(input.config),
    created_at: now,
  };
  await trx.insertInto('function_versions').values(row).execute();
  // A new function's first version goes live whatever `promote` says: `live` always names a version.
  if (currentVersion === version) await writeAliasWeights(trx, name, liveAlias, [{ version, weight: 1 }], now);
  return {
    function: functionFromRow({
      name,
      incarnation,
      current_version: currentVersion,
      created_at: createdAt,
      updated_at: now,
    }),
    version: versionFromRow(row),
    created: true,
  };
}

/**
 * Take the function row's write lock before reading it: a no-op update. Concurrent writers of one function then
 * queue on PostgreSQL and MySQL, and SQLite takes its write lock up front instead of upgrading a read lock
 * (which fails with SQLITE_BUSY without waiting).
 */
export async function lockFunction(trx: Transaction<Database>, name: string): Promise<void> {
  await trx
    .updateTable('functions')
    .set((eb) => ({ current_version: eb.ref('current_version') }))
    .where('name', '=', name)
    .execute();
}

/** The function's row; NOT_FOUND when there is none. */
export async function existingFunction(db: DbExecutor, name: string): Promise<FunctionRow> {
  const row = await db.selectFrom('functions').selectAll().where('name', '=', name).executeTakeFirst();
  if (row === undefined) throw new PlatformError('NOT_FOUND', `function ${name} does not exist`);
  return row;
}

/**
 * Throws INVALID_CONFIG naming the secrets of `secrets` (variable → secret name) that do not exist, after taking
 * each existing one's write lock (a no-op update, in name order): `deleteSecret` of one of them then waits for this
 * transaction and sees the version that names it.
 */
export async function requireSecrets(
  trx: Transaction<Database>,
  functionName: string,
  secrets: Record<string, string>,
): Promise<void> {
  const names = [...new Set(Object.values(secrets))].sort();
  const missing: string[] = [];
  for (const secret of names) {
    const result = await trx
      .updateTable('secrets')
      .set({ updated_at: sql<number>`updated_at` })
      .where('name', '=', secret)
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) missing.push(secret);
  }
  if (missing.length > 0) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `function ${functionName} names ${missing.length === 1 ? 'a secret that does' : 'secrets that do'} not exist: ${missing.join(', ')} (set ${missing.length === 1 ? 'it' : 'them'} first: savassan secret set NAME)`,
      { details: { missingSecrets: missing } },
    );
  }
}

/**
 * Secret name → the functions (sorted) with a version that names it and that an alias points at (or a running
 * rollout may move traffic back to).
 */
async function secretUsers(db: DbExecutor): Promise<Map<string, string[]>> {
  const aliased = await versionsInService(db);
  const rows = await db
    .selectFrom('function_versions')
    .select(['function_name', 'version', 'config'])
    // Only configs that name a secret (JSON.stringify writes no spaces); each one is parsed below.
    .where('config', 'like', '%"secrets":{"%')
    .orderBy('function_name')
    .execute();
  const users = new Map<string, Set<string>>();
  for (const row of rows) {
    if (aliased.get(row.function_name)?.has(Number(row.version)) !== true) continue;
    for (const secret of Object.values(configFromJson(row.config).secrets)) {
      const set = users.get(secret) ?? new Set<string>();
      set.add(row.function_name);
      users.set(secret, set);
    }
  }
  return new Map([...users].map(([secret, names]) => [secret, [...names].sort()]));
}

export function selectVersion(db: DbExecutor, name: string, version: number): Promise<FunctionVersionRow | undefined> {
  return db
    .selectFrom('function_versions')
    .selectAll()
    .where('function_name', '=', name)
    .where('version', '=', version)
    .executeTakeFirst();
}

/** Highest version number of a function, 0 when it has none. */
export async function latestVersion(db: DbExecutor, name: string): Promise<number> {
  const row = await db
    .selectFrom('function_versions')
    .select('version')
    .where('function_name', '=', name)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? 0 : Number(row.version);
}

// ---- Rows <-> domain types: the only place that knows the column representations. ----

export function functionFromRow(row: FunctionRow): FunctionRecord {
  return {
    name: row.name,
    incarnation: row.incarnation,
    currentVersion: Number(row.current_version),
    createdAt: dateFromDb(row.created_at, 'functions.created_at'),
    updatedAt: dateFromDb(row.updated_at, 'functions.updated_at'),
  };
}

/** A stored config; versions stored before a setting existed get its default. */
export function configFromJson(json: string): FunctionConfig {
  const stored = JSON.parse(json) as Partial<FunctionConfig> &
    Omit<FunctionConfig, 'network' | 'allowNet' | 'secrets' | keyof AsyncSettings>;
  return {
    ...stored,
    network: stored.network ?? false,
    allowNet: stored.allowNet ?? [],
    secrets: stored.secrets ?? {},
    // Versions stored before asynchronous invocations had settings run with the defaults.
    retries: stored.retries ?? functionLimits.retries.default,
    maxEventAgeSeconds: stored.maxEventAgeSeconds ?? functionLimits.maxEventAgeSeconds.default,
    retryDelaySeconds: stored.retryDelaySeconds ?? functionLimits.retryDelaySeconds.default,
    asyncConcurrency: stored.asyncConcurrency ?? functionLimits.asyncConcurrency.default,
    onSuccess: stored.onSuccess ?? null,
    onFailure: stored.onFailure ?? null,
  };
}

function secretFromRow(row: Pick<SecretRow, 'name' | 'created_at' | 'updated_at'>): SecretRecord {
  return {
    name: row.name,
    createdAt: dateFromDb(row.created_at, 'secrets.created_at'),
    updatedAt: dateFromDb(row.updated_at, 'secrets.updated_at'),
  };
}

export function versionFromRow(row: FunctionVersionRow): FunctionVersion {
  return {
    functionName: row.function_name,
    incarnation: row.incarnation,
    version: Number(row.version),
    codeSha256: row.code_sha256,
    codeSizeBytes: intFromDb(row.code_size_bytes, 'function_versions.code_size_bytes'),
    contentHash: row.content_hash,
    config: configFromJson(row.config),
    createdAt: dateFromDb(row.created_at, 'function_versions.created_at'),
  };
}

export function invocationFromRow(row: InvocationRow): InvocationRecord {
  return {
    id: row.id,
    functionName: row.function_name,
    version: Number(row.version),
    start: row.start_kind as StartKind,
    status: row.status as InvocationStatus,
    initMs: row.init_ms === null ? null : Number(row.init_ms),
    durationMs: Number(row.duration_ms),
    peakMemoryBytes:
      row.peak_memory_bytes === null ? null : intFromDb(row.peak_memory_bytes, 'invocations.peak_memory_bytes'),
    error: row.error === null ? null : errorFromJson(row.error),
    logKey: row.log_key,
    nodeId: row.node_id,
    instanceId: row.instance_id,
    createdAt: dateFromDb(row.created_at, 'invocations.created_at'),
    traceId: row.trace_id ?? null,
  };
}

/** A W3C trace id: 32 lowercase hex digits, not all zero. */
const traceIdPattern = /^(?!0{32})[0-9a-f]{32}$/;

/** Upper bounds of a record's numbers: a week in ms, 1 TiB (the guest protocol's own bound on peak memory). */
const maxRecordedMs = 7 * 24 * 3600 * 1000;
const maxRecordedBytes = 2 ** 40;

function isBoundedNumber(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= max;
}

/** Throws BAD_REQUEST for a record the database could not store faithfully. */
export function invocationToRow(record: InvocationRecord): Insertable<InvocationsTable> {
  if (typeof record.id !== 'string' || record.id.length === 0 || record.id.length > columnLengths.invocationId) {
    throw new PlatformError(
      'BAD_REQUEST',
      `invocation id must be 1 to ${columnLengths.invocationId} characters, got ${JSON.stringify(record.id)}`,
    );
  }
  const invalid = (field: string, value: unknown, expected: string): PlatformError =>
    new PlatformError('BAD_REQUEST', `invocation ${record.id}: ${field} must be ${expected}, got ${String(value)}`);
  if (typeof record.functionName !== 'string' || record.functionName === '') {
    throw invalid('functionName', record.functionName, 'a function name');
  }
  if (!Number.isInteger(record.version) || record.version < 1)
    throw invalid('version', record.version, 'an integer >= 1');
  // Bounds, not only finiteness: a value like 1e300 would be stored and then fail to read back (BIGINT, intFromDb).
  if (!isBoundedNumber(record.durationMs, maxRecordedMs)) {
    throw invalid('durationMs', record.durationMs, `a number from 0 to ${maxRecordedMs}`);
  }
  if (record.start !== 'cold' && record.start !== 'warm') throw invalid('start', record.start, 'cold or warm');
  if (!invocationStatuses.has(record.status)) throw invalid('status', record.status, 'an invocation status');
  for (const field of ['logKey', 'nodeId', 'instanceId'] as const) {
    const value: unknown = record[field];
    if (value !== null && typeof value !== 'string') throw invalid(field, value, 'null or a string');
  }
  const traceId = record.traceId ?? null;
  if (traceId !== null && !traceIdPattern.test(traceId)) throw invalid('traceId', traceId, 'null or 32 hex digits');
  if (record.initMs !== null && !isBoundedNumber(record.initMs, maxRecordedMs)) {
    throw invalid('initMs', record.initMs, `null or a number from 0 to ${maxRecordedMs}`);
  }
  if (record.peakMemoryBytes !== null && !isBoundedNumber(record.peakMemoryBytes, maxRecordedBytes)) {
    throw invalid('peakMemoryBytes', record.peakMemoryBytes, `null or a number from 0 to ${maxRecordedBytes}`);
  }
  return {
    id: record.id,
    function_name: record.functionName,
    version: record.version,
    start_kind: record.start,
    status: record.status,
    init_ms: record.initMs,
    duration_ms: record.durationMs,
    // BIGINT: PostgreSQL rejects a fractional value outright.
    peak_memory_bytes: record.peakMemoryBytes === null ? null : Math.round(record.peakMemoryBytes),
    error: record.error === null ? null : errorToJson(record.error),
    log_key: record.logKey,
    node_id: record.nodeId,
    instance_id: record.instanceId,
    created_at: millisFromDate(record.createdAt, 'createdAt'),
    trace_id: traceId,
  };
}

function errorToJson(error: SerializedError): string {
  const stored: SerializedError = {
    name: truncate(error.name, storedErrorLimits.name),
    message: truncate(error.message, storedErrorLimits.message),
  };
  if (error.code !== undefined) stored.code = truncate(error.code, storedErrorLimits.code);
  if (error.stack !== undefined) stored.stack = truncate(error.stack, storedErrorLimits.stack);
  return JSON.stringify(stored);
}

function errorFromJson(text: string): SerializedError {
  const parsed = JSON.parse(text) as Partial<Record<keyof SerializedError, unknown>>;
  const error: SerializedError = {
    name: typeof parsed.name === 'string' ? parsed.name : 'Error',
    message: typeof parsed.message === 'string' ? parsed.message : '',
  };
  if (typeof parsed.code === 'string') error.code = parsed.code;
  if (typeof parsed.stack === 'string') error.stack = parsed.stack;
  return error;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 14)}…[truncated]`;
}

/** A BIGINT as the driver returned it, as a number. */
export function intFromDb(value: BigIntValue, column: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new PlatformError('INTERNAL', `column ${column} holds ${String(value)}, which is not a safe integer`);
  }
  return n;
}

/** A timestamp column (epoch milliseconds) as a Date. */
export function dateFromDb(value: BigIntValue, column: string): Date {
  return new Date(intFromDb(value, column));
}

export function millisFromDate(date: Date, field: string): number {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new PlatformError('BAD_REQUEST', `${field} must be a valid date`);
  return ms;
}

function compileLimit(limit: number | undefined): number {
  if (limit === undefined) return invocationListLimits.default;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new PlatformError('BAD_REQUEST', `limit must be a positive integer, got ${String(limit)}`);
  }
  return Math.min(limit, invocationListLimits.max);
}

export function isVersionNumber(version: number): boolean {
  return Number.isSafeInteger(version) && version >= 1 && version <= 2_147_483_647;
}

// ---- Driver errors -> PlatformError. Drivers are recognised by their error codes, never imported. ----

/** A row the database refuses (NOT NULL, CHECK, a key), as opposed to a database that cannot take any row now. */
function isConstraintError(err: unknown): boolean {
  const { code } = err as { code?: unknown };
  return (
    (typeof code === 'string' && (code.startsWith('SQLITE_CONSTRAINT') || /^23\d{3}$/.test(code))) ||
    classifySqlError(err) === 'unique-violation'
  );
}

export type SqlErrorKind = 'unique-violation' | 'contention' | 'other';

/** Classify an error from better-sqlite3, pg or mysql2 by its `code` / `errno`. */
export function classifySqlError(err: unknown): SqlErrorKind {
  if (typeof err !== 'object' || err === null) return 'other';
  const code = 'code' in err && typeof err.code === 'string' ? err.code : '';
  const errno = 'errno' in err && typeof err.errno === 'number' ? err.errno : 0;
  if (
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === '23505' || // PostgreSQL unique_violation
    code === 'ER_DUP_ENTRY' ||
    errno === 1062
  ) {
    return 'unique-violation';
  }
  if (
    code.startsWith('SQLITE_BUSY') ||
    code.startsWith('SQLITE_LOCKED') ||
    code === '40001' || // PostgreSQL serialization_failure
    code === '40P01' || // PostgreSQL deadlock_detected
    code === 'ER_LOCK_DEADLOCK' ||
    code === 'ER_LOCK_WAIT_TIMEOUT' ||
    errno === 1213 ||
    errno === 1205
  ) {
    return 'contention';
  }
  return 'other';
}

function platformErrorFromSql(err: unknown, action: string, backend: string | undefined): PlatformError {
  if (err instanceof PlatformError) return err;
  switch (classifySqlError(err)) {
    case 'contention':
      return new PlatformError('UNAVAILABLE', `could not ${action}: the database is busy, retry`, { cause: err });
    case 'unique-violation':
      return new PlatformError('UNAVAILABLE', `could not ${action}: a concurrent write conflicted, retry`, {
        cause: err,
      });
    default:
      return new PlatformError(
        'UNAVAILABLE',
        `could not ${action}: ${backend === undefined ? '' : `${backend}: `}${errorMessage(err)}`,
        { cause: err },
      );
  }
}

function recordError(err: unknown, id: string, backend: string | undefined): PlatformError {
  if (classifySqlError(err) === 'unique-violation') {
    return new PlatformError('BAD_REQUEST', `invocation ${id} is already recorded`, { cause: err });
  }
  return platformErrorFromSql(err, `record invocation ${id}`, backend);
}

function closedError(action: string): PlatformError {
  return new PlatformError('UNAVAILABLE', `cannot ${action}: the metadata store is closed`);
}

/** A driver error as text; pg reports a refused dual-stack connect as an AggregateError with an empty message. */
export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(errorMessage).join('; ');
  if (err instanceof Error) return err.message !== '' ? err.message : err.name;
  return String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
