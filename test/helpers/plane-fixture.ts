// What the Manager, Reconciler and ControlPlane tests run over: an in-memory SQLite metadata store with the traffic
// store on its database, the memory pool, and a fake Agent (it implements the port) that reports each function's
// current incarnation.
import { randomUUID } from 'node:crypto';
import { MemoryPool } from '../../src/adapters/memory/memory-pool.js';
import type { SqlMetadataStore } from '../../src/adapters/sql/sql-metadata-store.js';
import { SqlTrafficStore } from '../../src/adapters/sql/sql-traffic-store.js';
import { openSqliteMetadataStore } from '../../src/adapters/sqlite/sqlite-metadata-store.js';
import { compileFunctionConfig } from '../../src/core/function-config.js';
import type { FunctionConfigInput } from '../../src/core/function-config.js';
import type { MetadataStore } from '../../src/core/ports/metadata-store.js';
import { poolKey } from '../../src/core/types.js';
import { FakeAgent } from './fakes.js';

export interface PlaneFixture {
  readonly metadata: SqlMetadataStore;
  readonly traffic: SqlTrafficStore;
  readonly pool: MemoryPool;
  readonly agent: FakeAgent;
  /** A function deployed when the fixture opened (version 1, current), its name unique to the fixture. */
  readonly fn: string;
  /** Deploys a new version of `name` (new content each time), made current unless `promote` is false. */
  deploy(name: string, config?: FunctionConfigInput, promote?: boolean): ReturnType<MetadataStore['deployVersion']>;
  /** The incarnation of `name` as last deployed through `deploy`; '' before. */
  incarnationOf(name: string): string;
  /** The pool key of a version of `name`. */
  keyOf(name: string, version: number): string;
  /** Closes the pool and the stores. */
  close(): Promise<void>;
}

export async function openPlaneFixture(): Promise<PlaneFixture> {
  const metadata = await openSqliteMetadataStore(':memory:');
  const pool = new MemoryPool();
  const agent = new FakeAgent();
  const incarnations = new Map<string, string>();
  const incarnationOf = (name: string): string => incarnations.get(name) ?? '';
  agent.incarnationOf = incarnationOf;
  const deploy: PlaneFixture['deploy'] = async (name, config = {}, promote = true) => {
    const deployed = await metadata.deployVersion({
      functionName: name,
      codeSha256: 'a'.repeat(64),
      codeSizeBytes: 1,
      contentHash: randomUUID(),
      config: compileFunctionConfig(config),
      promote,
    });
    incarnations.set(name, deployed.function.incarnation);
    return deployed;
  };
  const fn = `fn-${randomUUID().slice(0, 8)}`;
  await deploy(fn);
  return {
    metadata,
    traffic: new SqlTrafficStore(metadata.shared()),
    pool,
    agent,
    fn,
    deploy,
    incarnationOf,
    keyOf: (name, version) => poolKey({ functionName: name, incarnation: incarnationOf(name), version }),
    close: async () => {
      await pool.close();
      await metadata.close();
    },
  };
}
