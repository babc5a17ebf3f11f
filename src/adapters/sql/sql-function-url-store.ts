import { PlatformError } from '../../core/errors.js';
import { compileFunctionUrl } from '../../core/function-url-rules.js';
import type {
  FunctionUrlConfig,
  FunctionUrlCors,
  FunctionUrlStore,
  NewFunctionUrl,
} from '../../core/ports/function-url-store.js';
import type { FunctionUrlRow } from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, existingFunction, lockFunction } from './sql-metadata-store.js';

/**
 * `FunctionUrlStore` over the database of a `SqlMetadataStore`: a row per function, which goes with the function's
 * row (a cascading foreign key). Putting a config locks its function's row, as deleting a function does.
 *
 * @example
 * const urls = new SqlFunctionUrlStore(metadata.shared());
 * await urls.put({ functionName: 'web', auth: 'none' });
 */
export class SqlFunctionUrlStore implements FunctionUrlStore {
  readonly #access: SqlStoreAccess;
  readonly #now: () => number;

  constructor(access: SqlStoreAccess, options: { now?: () => number } = {}) {
    this.#access = access;
    this.#now = options.now ?? Date.now;
  }

  put(input: NewFunctionUrl): Promise<{ config: FunctionUrlConfig; created: boolean }> {
    return this.#access.run(`set the URL of function ${String(input.functionName)}`, async () => {
      const settings = compileFunctionUrl(input);
      return this.#access.write(async (trx) => {
        await lockFunction(trx, settings.functionName);
        await existingFunction(trx, settings.functionName);
        const existing = await trx
          .selectFrom('function_urls')
          .selectAll()
          .where('function_name', '=', settings.functionName)
          .executeTakeFirst();
        const cors = settings.cors === null ? null : JSON.stringify(settings.cors);
        if (existing !== undefined) {
          await trx
            .updateTable('function_urls')
            .set({ auth: settings.auth, cors })
            .where('function_name', '=', settings.functionName)
            .execute();
          return { config: urlFromRow({ ...existing, auth: settings.auth, cors }), created: false };
        }
        const row = { function_name: settings.functionName, auth: settings.auth, cors, created_at: this.#now() };
        await trx.insertInto('function_urls').values(row).execute();
        return { config: urlFromRow(row), created: true };
      });
    });
  }

  get(functionName: string): Promise<FunctionUrlConfig | null> {
    return this.#access.run(`read the URL of function ${String(functionName)}`, async () => {
      if (typeof functionName !== 'string') return null;
      const row = await this.#access.db
        .selectFrom('function_urls')
        .selectAll()
        .where('function_name', '=', functionName)
        .executeTakeFirst();
      return row === undefined ? null : urlFromRow(row);
    });
  }

  list(): Promise<FunctionUrlConfig[]> {
    return this.#access.run('list function URLs', async () => {
      const rows = await this.#access.db.selectFrom('function_urls').selectAll().orderBy('function_name').execute();
      return rows.map(urlFromRow);
    });
  }

  delete(functionName: string): Promise<boolean> {
    return this.#access.run(`delete the URL of function ${String(functionName)}`, async () => {
      if (typeof functionName !== 'string') return false;
      const result = await this.#access.write((trx) =>
        trx.deleteFrom('function_urls').where('function_name', '=', functionName).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    });
  }
}

function urlFromRow(
  row: FunctionUrlRow | { function_name: string; auth: string; cors: string | null; created_at: number },
): FunctionUrlConfig {
  if (row.auth !== 'none' && row.auth !== 'key') {
    throw new PlatformError('INTERNAL', `function_urls.auth holds ${JSON.stringify(row.auth)}`);
  }
  return {
    functionName: row.function_name,
    auth: row.auth,
    cors: row.cors === null ? null : (JSON.parse(row.cors) as FunctionUrlCors),
    createdAt: dateFromDb(row.created_at, 'function_urls.created_at'),
  };
}
