// `savassan gateway | manager | agent`: the cluster's roles as separate processes, configured by flags and the
// matching environment variables (flags win).
import { hostname } from 'node:os';
import { Option, type Command } from 'commander';
import pino from 'pino';
import { startAgentNode } from '../cluster/agent-node.js';
import { startGatewayNode } from '../cluster/gateway-node.js';
import { startManagerNode } from '../cluster/manager-node.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { SandboxKind } from '../cluster/agent-node.js';
import { existsSync } from 'node:fs';

interface CommonOptions {
  etcd: string;
  etcdPrefix: string;
  token: string | undefined;
  dataDir: string;
  logLevel: string;
}

interface BackendOptions {
  redis: string | undefined;
  db: string | undefined;
  s3: string | undefined;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`not an integer: ${value}`);
  return n;
}

function withCommon(command: Command): Command {
  return command
    .addOption(
      new Option('--etcd <endpoints>', 'etcd client URLs, comma-separated')
        .env('SAVASSAN_ETCD')
        .default('http://127.0.0.1:2379'),
    )
    .addOption(
      new Option('--etcd-prefix <prefix>', 'key prefix in etcd').env('SAVASSAN_ETCD_PREFIX').default('/savassan'),
    )
    .addOption(
      new Option('--token <token>', 'shared cluster token: agents accept calls only with it').env(
        'SAVASSAN_CLUSTER_TOKEN',
      ),
    )
    .option('--data-dir <dir>', 'where this process keeps its files', '.savassan')
    .option('--log-level <level>', 'log level (debug, info, warn, error)', 'info');
}

function withBackends(command: Command): Command {
  return command
    .addOption(new Option('--redis <url>', 'shared pool and provisioning queue').env('SAVASSAN_REDIS_URL'))
    .addOption(new Option('--db <url>', 'shared metadata: postgres://… or mysql://…').env('SAVASSAN_DB_URL'))
    .addOption(new Option('--s3 <url>', 'shared code and logs').env('SAVASSAN_S3_URL'));
}

function loggerOf(level: string): Logger {
  return pino({ level }, pino.destination(2));
}

function endpoints(value: string): string[] {
  return value
    .split(',')
    .map((endpoint) => endpoint.trim())
    .filter((endpoint) => endpoint !== '');
}

function token(value: string | undefined): string {
  if (value === undefined || value === '') {
    throw new PlatformError(
      'INVALID_CONFIG',
      'a cluster token is required: pass --token or set SAVASSAN_CLUSTER_TOKEN',
    );
  }
  return value;
}

/** What every cluster process takes from the common and backend flags. */
function sharedSettings(opts: CommonOptions & BackendOptions) {
  return {
    dataDir: opts.dataDir,
    token: token(opts.token),
    etcdEndpoints: endpoints(opts.etcd),
    etcdPrefix: opts.etcdPrefix,
    redisUrl: opts.redis,
    dbUrl: opts.db,
    s3Url: opts.s3,
    queueCapacity: 1000,
    logger: loggerOf(opts.logLevel),
  };
}

/** Run until SIGINT/SIGTERM, then close gracefully and exit; a second signal exits at once. */
function untilSignal(what: string, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: stopping the ${what} at once\n`);
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`${signal}: stopping the ${what}...\n`);
    void close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export function addClusterCommands(program: Command): void {
  withCommon(
    program
      .command('agent')
      .description('run one node of a cluster: sandboxes behind a gRPC server, registered in etcd')
      .addOption(new Option('--node-id <id>', "this node's id").env('SAVASSAN_NODE_ID').default(hostname()))
      .addOption(new Option('--listen <address>', 'gRPC address: host:port or unix:/path').default('127.0.0.1:7070'))
      .addOption(new Option('--advertise <address>', 'address others dial, if not --listen').env('SAVASSAN_ADVERTISE'))
      .option('--capacity <n>', 'sandboxes this node runs at once', integer, 32)
      .addOption(
        new Option('--sandbox <kind>', 'sandbox runtime: bwrap where bubblewrap is installed, else process').choices([
          'process',
          'bwrap',
          'runc',
        ]),
      )
      .option('--no-stem-cells', 'do not keep pre-started sandboxes')
      .option('--lease-ttl <seconds>', 'a node that stops answering leaves the cluster after this long', integer, 5)
      .addOption(new Option('--s3 <url>', 'shared code and logs').env('SAVASSAN_S3_URL')),
  ).action(
    async (
      opts: CommonOptions & {
        nodeId: string;
        listen: string;
        advertise: string | undefined;
        capacity: number;
        sandbox: SandboxKind | undefined;
        stemCells: boolean;
        leaseTtl: number;
        s3: string | undefined;
      },
    ) => {
      const node = await startAgentNode({
        nodeId: opts.nodeId,
        dataDir: opts.dataDir,
        listen: opts.listen,
        advertise: opts.advertise,
        token: token(opts.token),
        capacity: opts.capacity,
        sandbox: opts.sandbox ?? (existsSync('/usr/bin/bwrap') ? 'bwrap' : 'process'),
        stemCells: opts.stemCells,
        etcdEndpoints: endpoints(opts.etcd),
        etcdPrefix: opts.etcdPrefix,
        s3Url: opts.s3,
        leaseTtlSeconds: opts.leaseTtl,
        logger: loggerOf(opts.logLevel),
      });
      process.stdout.write(`Savassan agent ${node.nodeId} is serving on ${node.address}\n`);
      untilSignal('agent', () => node.close());
    },
  );

  withBackends(
    withCommon(
      program
        .command('manager')
        .description('run a manager of a cluster: provisions sandboxes on the nodes; the elected leader reconciles')
        .addOption(new Option('--id <id>', "this manager's id").default(`manager-${hostname()}-${process.pid}`))
        .option('--concurrency <n>', 'sandboxes created at once', integer, 4),
    ),
  ).action(async (opts: CommonOptions & BackendOptions & { id: string; concurrency: number }) => {
    const node = await startManagerNode({
      ...sharedSettings(opts),
      managerId: opts.id,
      concurrency: opts.concurrency,
      reconcileIntervalMs: 1000,
    });
    process.stdout.write(`Savassan manager ${node.managerId} is running\n`);
    untilSignal('manager', () => node.close());
  });

  withBackends(
    withCommon(
      program
        .command('gateway')
        .description('run a gateway of a cluster: the HTTP API, calling agents over gRPC')
        .option('--host <host>', 'address to listen on', '127.0.0.1')
        .option('--port <port>', 'port to listen on', integer, 8080)
        .addOption(
          new Option('--api-key <key>', 'API key callers must present (repeatable); needed off loopback')
            .env('SAVASSAN_API_KEY')
            .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
        )
        .option('--queue-wait <seconds>', 'how long an invocation waits for an instance before 429', integer, 10)
        .option('--routing-listen <address>', 'where the leader pushes the routing table (host:port)', '127.0.0.1:0'),
    ),
  ).action(
    async (
      opts: CommonOptions &
        BackendOptions & {
          host: string;
          port: number;
          apiKey: string[] | undefined;
          queueWait: number;
          routingListen: string;
        },
    ) => {
      const node = await startGatewayNode({
        ...sharedSettings(opts),
        gatewayId: `gateway-${hostname()}-${process.pid}`,
        host: opts.host,
        port: opts.port,
        apiKeys: opts.apiKey ?? [],
        queueWaitMs: opts.queueWait * 1000,
        routingListen: opts.routingListen,
      });
      process.stdout.write(`Savassan gateway is listening on ${node.url}\n`);
      untilSignal('gateway', () => node.close());
    },
  );
}
