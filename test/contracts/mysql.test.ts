import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openMysqlMetadataStore } from '../../src/adapters/mysql/mysql-metadata-store.js';
import { isPlatformError } from '../../src/core/errors.js';
import { startMariadbServer } from '../kit/mariadb-server.js';
import { sharedServer } from '../kit/sql-server-common.js';
import { metadataStoreContract } from './metadata-store.contract.js';
import {
  queryAfterMigration,
  serverMessageQueuesFixture,
  serverQueueFixture,
  serverScheduleFixture,
  serverWorkflowFixture,
  serverIntelligenceFixture,
  serverTriggerFixture,
  serverFunctionUrlFixture,
  serverStoreFixture,
  serverTrafficFixture,
  sqlServerStoreCases,
} from './sql-server-store.cases.js';
import { invocationQueueContract } from './invocation-queue.contract.js';
import { messageQueuesContract } from './message-queues.contract.js';
import { triggerStoreContract } from './trigger-store.contract.js';
import { functionUrlStoreContract } from './function-url-store.contract.js';
import { trafficStoreContract } from './traffic-store.contract.js';
import { scheduleStoreContract } from './schedule-store.contract.js';
import { workflowStoreContract } from './workflow-store.contract.js';
import { intelligenceStoreContract } from './intelligence-store.contract.js';

// One MariaDB server for this file, a fresh database per test.
const server = sharedServer(startMariadbServer);

metadataStoreContract('MariaDB', serverStoreFixture(server, openMysqlMetadataStore));

metadataStoreContract(
  'MariaDB, records journalled',
  serverStoreFixture(server, openMysqlMetadataStore, { journal: true }),
);

invocationQueueContract('MariaDB', serverQueueFixture(server, openMysqlMetadataStore));

scheduleStoreContract('MariaDB', serverScheduleFixture(server, openMysqlMetadataStore));
workflowStoreContract('MariaDB', serverWorkflowFixture(server, openMysqlMetadataStore));
intelligenceStoreContract('MariaDB', serverIntelligenceFixture(server, openMysqlMetadataStore));
messageQueuesContract('MariaDB', serverMessageQueuesFixture(server, openMysqlMetadataStore));

triggerStoreContract('MariaDB', serverTriggerFixture(server, openMysqlMetadataStore));
functionUrlStoreContract('MariaDB', serverFunctionUrlFixture(server, openMysqlMetadataStore));

trafficStoreContract(
  'MariaDB, records journalled',
  serverTrafficFixture(server, openMysqlMetadataStore, { journal: true }),
);

sqlServerStoreCases('MySQL', server, openMysqlMetadataStore);

describe('MySQL metadata store specifics', () => {
  it("indexes invocations by function, version and time, for a version's figures", async () => {
    const columns = await queryAfterMigration(
      server,
      openMysqlMetadataStore,
      `select column_name as name from information_schema.statistics
       where table_schema = database() and table_name = 'invocations'
         and index_name = 'invocations_function_version_created_idx'
       order by seq_in_index`,
    );
    assert.deepEqual(
      columns.map((column) => column.name),
      ['function_name', 'version', 'created_at'],
    );
  });

  it('creates InnoDB tables in utf8mb4 with binary collation on a latin1 server', async () => {
    const tables = await queryAfterMigration(
      server,
      openMysqlMetadataStore,
      `select table_name, engine, table_collation, @@character_set_server as server_charset
       from information_schema.tables where table_schema = database() and table_name not like 'savassan_%'`,
    );
    assert.deepEqual(
      tables.map((table) => [table.table_name, table.engine, table.table_collation, table.server_charset]).sort(),
      [
        ['aliases', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['curations', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['dataset_images', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['function_urls', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['function_versions', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['functions', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['intelligence_runs', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['invocation_idempotency_keys', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['invocations', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['khaydarin_logs', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['message_queues', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['queue_messages', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['queue_triggers', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['queued_invocations', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['rollouts', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['schedules', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['secrets', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['workflow_cache', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['workflow_executions', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['workflow_nodes', 'InnoDB', 'utf8mb4_bin', 'latin1'],
        ['workflow_versions', 'InnoDB', 'utf8mb4_bin', 'latin1'],
      ],
    );
  });

  it('rejects a URL that names no database with BAD_REQUEST, without the password', async () => {
    const mariadb = await server();
    await assert.rejects(
      openMysqlMetadataStore(`mysql://savassan:s3cret-pw@127.0.0.1:${mariadb.port}`),
      (err: unknown) => isPlatformError(err, 'BAD_REQUEST') && !err.message.includes('s3cret-pw'),
    );
  });
});
