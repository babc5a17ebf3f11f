import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openPostgresMetadataStore } from '../../src/adapters/postgres/postgres-metadata-store.js';
import { startPostgresServer } from '../kit/postgres-server.js';
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

// One PostgreSQL server for this file, a fresh database per test.
const server = sharedServer(startPostgresServer);

metadataStoreContract('PostgreSQL', serverStoreFixture(server, openPostgresMetadataStore));

metadataStoreContract(
  'PostgreSQL, records journalled',
  serverStoreFixture(server, openPostgresMetadataStore, { journal: true }),
);

invocationQueueContract('PostgreSQL', serverQueueFixture(server, openPostgresMetadataStore));

scheduleStoreContract('PostgreSQL', serverScheduleFixture(server, openPostgresMetadataStore));
workflowStoreContract('PostgreSQL', serverWorkflowFixture(server, openPostgresMetadataStore));
intelligenceStoreContract('PostgreSQL', serverIntelligenceFixture(server, openPostgresMetadataStore));
messageQueuesContract('PostgreSQL', serverMessageQueuesFixture(server, openPostgresMetadataStore));

triggerStoreContract('PostgreSQL', serverTriggerFixture(server, openPostgresMetadataStore));
functionUrlStoreContract('PostgreSQL', serverFunctionUrlFixture(server, openPostgresMetadataStore));

trafficStoreContract(
  'PostgreSQL, records journalled',
  serverTrafficFixture(server, openPostgresMetadataStore, { journal: true }),
);

sqlServerStoreCases('PostgreSQL', server, openPostgresMetadataStore);

describe('PostgreSQL metadata store specifics', () => {
  it("indexes invocations by function, version and time, for a version's figures", async () => {
    const indexes = await queryAfterMigration(
      server,
      openPostgresMetadataStore,
      `select indexdef from pg_indexes where tablename = 'invocations'
       and indexname = 'invocations_function_version_created_idx'`,
    );
    assert.equal(indexes.length, 1);
    assert.match(String(indexes[0]?.indexdef), /\(function_name, version, created_at\)$/);
  });

  it('text columns collate "C", whatever the database default, so sorting matches SQLite', async () => {
    const columns = await queryAfterMigration(
      server,
      openPostgresMetadataStore,
      `select table_name, column_name, collation_name from information_schema.columns
       where table_schema = 'public' and data_type = 'character varying' and table_name not like 'savassan_%'`,
    );
    assert.equal(columns.length, 80, 'every varchar column of the tables');
    assert.deepEqual(
      columns.filter((column) => column.collation_name !== 'C'),
      [],
    );
  });
});
