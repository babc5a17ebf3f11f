// A real cluster's surroundings on one machine, as the multi-node tests start them: agent hosts in network
// namespaces, etcd, PostgreSQL, S3 (s3rver) and optionally Redis, the cluster token in a file, and the Agents
// themselves (`savassan agent` in each namespace). Managers and gateways are each test's own.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestNetwork, type TestNetwork } from '../kit/netns.js';
import { startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { startRedisServer, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { track, type Proc } from './cluster-processes.js';

export interface ClusterServices {
  /** The test's temporary root (mode 0711): every process's data dir lives under it. */
  root: string;
  network: TestNetwork;
  etcd: EtcdServer;
  postgres: SqlTestServer;
  s3: S3Server;
  /** Only when asked for. */
  redis: RedisServer | undefined;
  /** The metadata database (on `postgres`). */
  database: string;
  /** The cluster token, in a file only root reads. */
  tokenFile: string;
  /**
   * The environment of managers and gateways: the token, S3, PostgreSQL, and Redis when started (else no
   * SAVASSAN_REDIS_URL at all).
   */
  env: NodeJS.ProcessEnv;
  /** Flags every role takes: etcd's endpoints and a quiet log. */
  common: string[];
  /** Stops the servers, removes the network and the root (stop the processes first). */
  stop(): Promise<void>;
}

/**
 * Starts `hosts` agent hosts, etcd and S3 on the hosts' bridge, PostgreSQL (and Redis when `redis`) under a fresh
 * root named after `prefix`; S3 objects go to `bucket`.
 */
export async function startClusterServices(options: {
  prefix: string;
  hosts: number;
  redis: boolean;
  bucket: string;
}): Promise<ClusterServices> {
  const root = await mkdtemp(join(tmpdir(), `${options.prefix}-`));
  await chmod(root, 0o711);
  let network: TestNetwork;
  try {
    network = await createTestNetwork(options.hosts);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const started = await Promise.allSettled([
    startEtcdServer({ host: network.bridgeIp }),
    startPostgresServer(),
    startS3Server({ host: network.bridgeIp }),
    options.redis ? startRedisServer() : Promise.resolve(undefined),
  ] as const);
  const [etcd, postgres, s3, redis] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined)) as [
    EtcdServer | undefined,
    SqlTestServer | undefined,
    S3Server | undefined,
    RedisServer | undefined,
  ];
  const stop = async (): Promise<void> => {
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop()]);
    await network.destroy();
    await rm(root, { recursive: true, force: true });
  };
  if (etcd === undefined || postgres === undefined || s3 === undefined || (options.redis && redis === undefined)) {
    await stop();
    const failed = started.find((s) => s.status === 'rejected');
    throw failed?.status === 'rejected' ? failed.reason : new Error('a server did not start');
  }
  const token = `token-${randomUUID()}`;
  // Secrets come from the environment or files, never the arguments (visible to every local user in `ps`).
  const tokenFile = join(root, 'cluster-token');
  let database: string;
  try {
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    database = await postgres.createDatabase();
  } catch (err) {
    await stop();
    throw err;
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SAVASSAN_CLUSTER_TOKEN: token,
    SAVASSAN_S3_URL: `${s3.url}/${options.bucket}?createBucket=true`,
    SAVASSAN_DB_URL: postgres.url(database),
  };
  if (redis === undefined) delete env.SAVASSAN_REDIS_URL;
  else env.SAVASSAN_REDIS_URL = redis.url;
  return {
    root,
    network,
    etcd,
    postgres,
    s3,
    redis,
    database,
    tokenFile,
    env,
    common: ['--etcd', etcd.endpoints.join(','), '--log-level', 'warn'],
    stop,
  };
}

/**
 * Starts `savassan agent` (the CLI at `cli`) as `node-<i>` in each host's namespace, on port 7070 of its address,
 * with the process sandbox; each is pushed onto `into` as it starts (so a test's `after` stops it whatever
 * happens), and resolves once every one announced itself.
 */
export async function startNetnsAgents(
  services: ClusterServices,
  into: Proc[],
  options: { cli: string; capacity: number; leaseTtlSeconds: number },
): Promise<void> {
  const started: Proc[] = [];
  for (const [i, host] of services.network.hosts.entries()) {
    const args = [options.cli, 'agent', '--node-id', `node-${i}`, '--listen', `${host.ip}:7070`];
    args.push('--capacity', String(options.capacity), '--sandbox', 'process', '--no-stem-cells');
    args.push('--lease-ttl', String(options.leaseTtlSeconds), '--data-dir', join(services.root, `agent-${i}`));
    args.push('--token-file', services.tokenFile, '--json', ...services.common);
    const env = { ...services.env, SAVASSAN_CLUSTER_TOKEN: '' };
    const agent = track(`agent ${i}`, host.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env }));
    started.push(agent);
    into.push(agent);
  }
  // With --json, each role says once that it runs in one JSON line.
  const announced = await Promise.all(started.map((agent) => agent.waitFor(/^\{"role":"agent".*\}$/m)));
  assert.deepEqual(
    announced.map(([line]) => (JSON.parse(line) as { id: string }).id),
    started.map((_, i) => `node-${i}`),
  );
}

/** The id of the manager that leads the control plane: the oldest key of etcd's election under `leader/`. */
export async function electionLeader(etcd: EtcdServer): Promise<string> {
  const args = ['get', '/savassan/leader/', '--prefix', '--sort-by=CREATE', '--order=ASCEND', '--print-value-only'];
  return (await etcd.ctl(args)).split('\n')[0]?.trim() ?? '';
}

/** Pids of the live processes (not this one) whose command line mentions `marker`. */
async function processesMentioning(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ');
      if (cmdline.includes(marker)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not readable
    }
  }
  return pids;
}

/**
 * Stops every process whose command line mentions `root` (a test's unique temporary root): those the test did not
 * start itself, such as the ones an upgrade launched detached. SIGTERM, then SIGKILL to those left after `graceMs`.
 * Resolves with how many there were.
 */
export async function stopProcessesUnder(root: string, graceMs = 10_000): Promise<number> {
  const found = await processesMentioning(root);
  const signal = (pid: number, name: NodeJS.Signals): void => {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  };
  for (const pid of found) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let left = found;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const live = new Set(await processesMentioning(root));
    left = left.filter((pid) => live.has(pid));
  }
  for (const pid of left) signal(pid, 'SIGKILL');
  return found.length;
}
