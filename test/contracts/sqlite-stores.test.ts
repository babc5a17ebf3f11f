// The workflow and intelligence stores' contracts on SQLite (a file, and :memory:), beside the other SQLite suites
// in sqlite-fs.test.ts (split so that each file stays well inside the per-file time limit).
import { join } from 'node:path';
import { openSqliteMetadataStore } from '../../src/adapters/sqlite/sqlite-metadata-store.js';
import { SqlIntelligenceStore } from '../../src/adapters/sql/sql-intelligence-store.js';
import { SqlWorkflowStore } from '../../src/adapters/sql/sql-workflow-store.js';
import { intelligenceStoreContract } from './intelligence-store.contract.js';
import { workflowStoreContract } from './workflow-store.contract.js';
import { testTempDirs } from '../helpers/temp-dirs.js';

const { tempDir, removeTempDir } = testTempDirs();

workflowStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite-workflows');
  const path = join(dir, 'metadata.db');
  const opened = async () => {
    const metadata = await openSqliteMetadataStore(path);
    return { workflows: new SqlWorkflowStore(metadata.shared()), close: () => metadata.close() };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

workflowStoreContract('SQLite :memory:', async () => {
  const metadata = await openSqliteMetadataStore(':memory:');
  return {
    workflows: new SqlWorkflowStore(metadata.shared()),
    close: () => metadata.close(),
    cleanup: () => Promise.resolve(),
  };
});

intelligenceStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite-intelligence');
  const path = join(dir, 'metadata.db');
  const opened = async () => {
    const metadata = await openSqliteMetadataStore(path);
    return { intelligence: new SqlIntelligenceStore(metadata.shared()), close: () => metadata.close() };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

intelligenceStoreContract('SQLite :memory:', async () => {
  const metadata = await openSqliteMetadataStore(':memory:');
  return {
    intelligence: new SqlIntelligenceStore(metadata.shared()),
    close: () => metadata.close(),
    cleanup: () => Promise.resolve(),
  };
});
