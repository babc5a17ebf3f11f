// `savassan gateway | manager | agent`: the cluster's roles as separate processes, configured by flags and the
// matching environment variables (flags win).
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { defaultFreezeIdleMs } from '../core/node-defaults.js';
import { PlatformError } from '../core/errors.js';
import type { SandboxKind } from '../cluster/agent-node.js';
import { existsSync } from 'node:fs';
import type { EtcdSecurity } from '../cluster/connections.js';
import { apiKeysFrom, readNamedFile, readSecretFile, refuseSecretArgs, withApiKeyOptions } from './secret-args.js';
import { untilSignal } from './signals.js';
import { integer } from './output.js';
import { loggerOf } from './server-log.js';
import { withWorkflowBackend, workflowBackendFrom, type WorkflowBackendFlags } from './workflow-backend-options.js';

interface CommonOptions {
  json: boolean | undefined;
  etcd: string;
  etcdPrefix: string;
  etcdUser: string | undefined;
  etcdPasswordFile: string | undefined;
  etcdCa: string | undefined;
  etcdCert: string | undefined;
  etcdKey: string | undefined;
  token: string | undefined;
  tokenFile: string | undefined;
  dataDir: string;
  logLevel: string;
}

interface BackendOptions {
  redis: string | undefined;
  db: string | undefined;
  s3: string | undefined;
}

/** `--freeze-idle`: milliseconds, or `off`. */
function freezeIdle(value: string): number | false {
  if (value === 'off') return false;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected milliseconds or off, got ${value}`);
  return n;
}

/** The node's budgets and freezing, for `savassan start` and `savassan agent`. */
export function withNodeLimits(command: Command): Command {
  return command
    .option(
      '--node-memory <MB>',
      'memory all sandboxes may hold together (default: host memory less a reserve)',
      integer,
    )
    .option(
      '--node-pids <n>',
      'processes and threads all sandboxes may hold together (default: kernel limit less a reserve)',
      integer,
    )
    .option(
      '--freeze-idle <ms>',
      `freeze sandboxes idle this long (0: after every invocation; off: never; default ${defaultFreezeIdleMs})`,
      freezeIdle,
    );
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
      new Option('--etcd-user <name>', 'etcd user (its password: SAVASSAN_ETCD_PASSWORD or --etcd-password-file)').env(
        'SAVASSAN_ETCD_USER',
      ),
    )
    .addOption(
      new Option('--etcd-password-file <file>', "the etcd user's password, in a file").env(
        'SAVASSAN_ETCD_PASSWORD_FILE',
      ),
    )
    .addOption(
      new Option('--etcd-ca <file>', "CA of etcd's certificate (PEM; https:// endpoints)").env('SAVASSAN_ETCD_CA'),
    )
    .addOption(new Option('--etcd-cert <file>', 'client certificate for etcd (PEM)').env('SAVASSAN_ETCD_CERT'))
    .addOption(new Option('--etcd-key <file>', 'key of the client certificate (PEM)').env('SAVASSAN_ETCD_KEY'))
    .addOption(
      new Option('--token <token>', 'refused: the cluster token comes from SAVASSAN_CLUSTER_TOKEN or --token-file')
        .env('SAVASSAN_CLUSTER_TOKEN')
        .hideHelp(),
    )
    .addOption(
      new Option('--token-file <file>', 'file holding the shared cluster token (or set SAVASSAN_CLUSTER_TOKEN)').env(
        'SAVASSAN_CLUSTER_TOKEN_FILE',
      ),
    )
    .option('--data-dir <dir>', 'where this process keeps its files', '.savassan')
    .option('--log-level <level>', 'log level (debug, info, warn, error)', 'info')
    .option('--json', 'print one JSON line once running: {role, id, address}')
    .hook('preAction', (_command, action) => refuseSecretArgs(action));
}

/** The line a role prints once it runs: for a person, or with `--json` for a supervisor script. */
function announce(
  opts: { json?: boolean },
  line: string,
  facts: { role: string; id: string; address: string | null; grpc?: string },
) {
  process.stdout.write(opts.json === true ? `${JSON.stringify(facts)}\n` : `${line}\n`);
}

/**
 * The arguments a role was started with after its name (`process.argv` past `role`), with `--data-dir` resolved to
 * an absolute path: what a replacement of this process is started with. Secret flags never get here
 * (`refuseSecretArgs` refused them); secrets come from the environment and files.
 *
 * @example
 * launchArgsOf(['node', 'savassan.js', 'gateway', '--port', '8080'], 'gateway', '/srv/sv') // ['--port', '8080', '--data-dir', '/srv/sv']
 */
export function launchArgsOf(argv: readonly string[], role: string, dataDir: string): string[] {
  const at = argv.indexOf(role, 2);
  const given = at === -1 ? [] : argv.slice(at + 1);
  const args: string[] = [];
  for (let i = 0; i < given.length; i++) {
    const arg = given[i] as string;
    if (arg === '--data-dir') i++;
    else if (!arg.startsWith('--data-dir=')) args.push(arg);
  }
  return [...args, '--data-dir', resolve(dataDir)];
}

/** The backend options, one declaration each, for `start` and the cluster roles. */
const backendOptions = {
  redis: () =>
    new Option('--redis <url>', 'keep the warm pool and provisioning queue in Redis (redis://host:6379/0)').env(
      'SAVASSAN_REDIS_URL',
    ),
  db: () =>
    new Option('--db <url>', 'keep metadata in PostgreSQL or MySQL (postgres://… or mysql://…)').env('SAVASSAN_DB_URL'),
  s3: () =>
    new Option('--s3 <url>', 'keep code and logs in S3 (s3://KEY:SECRET@host/bucket or http://…/bucket)').env(
      'SAVASSAN_S3_URL',
    ),
};

export function withBackends(command: Command): Command {
  return command.addOption(backendOptions.redis()).addOption(backendOptions.db()).addOption(backendOptions.s3());
}

function endpoints(value: string): string[] {
  return value
    .split(',')
    .map((endpoint) => endpoint.trim())
    .filter((endpoint) => endpoint !== '');
}

/** The cluster token: from `--token-file`, else SAVASSAN_CLUSTER_TOKEN (`--token` itself is refused). */
function token(opts: CommonOptions): string {
  const value = opts.tokenFile === undefined ? opts.token : readSecretFile(opts.tokenFile, 'cluster token');
  if (value === undefined || value === '') {
    throw new PlatformError(
      'INVALID_CONFIG',
      'a cluster token is required: set SAVASSAN_CLUSTER_TOKEN or pass --token-file FILE',
    );
  }
  return value;
}

/** etcd's user and TLS from the flags; the password only from SAVASSAN_ETCD_PASSWORD or a file, never argv. */
function etcdSecurity(opts: CommonOptions): EtcdSecurity {
  const pem = (file: string | undefined, what: string): Buffer | undefined =>
    file === undefined ? undefined : readNamedFile(file, `etcd ${what}`);
  const password =
    opts.etcdPasswordFile === undefined
      ? process.env.SAVASSAN_ETCD_PASSWORD
      : readSecretFile(opts.etcdPasswordFile, 'etcd password');
  if (opts.etcdUser === undefined && password !== undefined && password !== '') {
    throw new PlatformError('INVALID_CONFIG', 'an etcd password is set but no user: pass --etcd-user NAME');
  }
  if (opts.etcdUser !== undefined && (password === undefined || password === '')) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `etcd user ${opts.etcdUser} needs a password: set SAVASSAN_ETCD_PASSWORD or pass --etcd-password-file FILE`,
    );
  }
  const tls = { ca: pem(opts.etcdCa, 'CA'), cert: pem(opts.etcdCert, 'certificate'), key: pem(opts.etcdKey, 'key') };
  const anyTls = tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined;
  return {
    auth: opts.etcdUser === undefined ? undefined : { username: opts.etcdUser, password: password ?? '' },
    tls: anyTls ? tls : undefined,
  };
}

/** What every cluster process takes from the common and backend flags. */
async function sharedSettings(opts: CommonOptions & BackendOptions) {
  return {
    dataDir: opts.dataDir,
    token: token(opts),
    etcdEndpoints: endpoints(opts.etcd),
    etcdPrefix: opts.etcdPrefix,
    etcdSecurity: etcdSecurity(opts),
    redisUrl: opts.redis,
    dbUrl: opts.db,
    s3Url: opts.s3,
    queueCapacity: 1000,
    logger: await loggerOf(opts.logLevel),
  };
}

/** Run until SIGINT/SIGTERM, then close gracefully and exit; a second signal exits at once. */
export function addClusterCommands(program: Command): void {
  withCommon(
    withNodeLimits(program.command('agent'))
      .description('run one node of a cluster: sandboxes behind a gRPC server, registered in etcd')
      .addHelpText(
        'after',
        '\nExamples:\n  savassan agent --token-file /etc/savassan/token --etcd http://10.0.0.1:2379 --listen 10.0.0.5:7070',
      )
      .addOption(
        new Option('--node-id <id>', "this node's id").env('SAVASSAN_NODE_ID').default(hostname(), 'the host name'),
      )
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
      .addOption(backendOptions.s3()),
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
        nodeMemory: number | undefined;
        nodePids: number | undefined;
        freezeIdle: number | false | undefined;
      },
    ) => {
      const { startAgentNode } = await import('../cluster/agent-node.js');
      const node = await startAgentNode({
        nodeId: opts.nodeId,
        dataDir: opts.dataDir,
        listen: opts.listen,
        advertise: opts.advertise,
        token: token(opts),
        capacity: opts.capacity,
        sandbox: opts.sandbox ?? (existsSync('/usr/bin/bwrap') ? 'bwrap' : 'process'),
        stemCells: opts.stemCells,
        nodeMemoryMB: opts.nodeMemory,
        nodePids: opts.nodePids,
        freezeIdleMs: opts.freezeIdle,
        etcdEndpoints: endpoints(opts.etcd),
        etcdPrefix: opts.etcdPrefix,
        etcdSecurity: etcdSecurity(opts),
        s3Url: opts.s3,
        leaseTtlSeconds: opts.leaseTtl,
        logger: await loggerOf(opts.logLevel),
      });
      announce(opts, `Savassan agent ${node.nodeId} is serving on ${node.address}`, {
        role: 'agent',
        id: node.nodeId,
        address: node.address,
      });
      untilSignal('stopping the agent', () => node.close());
    },
  );

  withBackends(
    withCommon(
      program
        .command('manager')
        .description('run a manager of a cluster: provisions sandboxes on the nodes; the elected leader reconciles')
        .addHelpText(
          'after',
          '\nExamples:\n  SAVASSAN_DB_URL=postgres://savassan@db/savassan savassan manager --token-file /etc/savassan/token --etcd http://10.0.0.1:2379',
        )
        .addOption(
          new Option('--id <id>', "this manager's id").default(
            `manager-${hostname()}-${process.pid}`,
            'manager-HOST-PID',
          ),
        )
        .option('--concurrency <n>', 'sandboxes created at once', integer, 4)
        .addOption(poolOption())
        .addOption(
          new Option('--listen <address>', "where this manager's Leader gRPC service listens (--pool leader)").default(
            '127.0.0.1:0',
          ),
        )
        .addOption(
          new Option('--advertise <address>', 'address other processes dial, if not --listen').env(
            'SAVASSAN_ADVERTISE',
          ),
        )
        .addOption(
          new Option('--followers <n>', 'followers the leader keeps (default: ⌈log₂ managers⌉, at least 1)').argParser(
            integer,
          ),
        )
        .option('--leader-ttl <seconds>', 'a crashed leader is followed within this long', integer, 10)
        .addOption(
          new Option('--infrastructure <kind>', 'how `savassan upgrade` starts new processes')
            .choices(['local', 'kubernetes'])
            .default('local'),
        )
        .addOption(
          new Option('--builds-dir <dir>', 'where `savassan upgrade --to VERSION` finds installed builds').default(
            defaultBuildsDir,
          ),
        )
        .option('--image <repository>', 'with --infrastructure kubernetes: the image repository of the builds')
        .option('--namespace <name>', "with --infrastructure kubernetes: the Deployments' namespace"),
    ),
  ).action(
    async (
      opts: CommonOptions &
        BackendOptions & {
          id: string;
          concurrency: number;
          pool: 'leader' | 'redis' | undefined;
          listen: string;
          advertise: string | undefined;
          followers: number | undefined;
          leaderTtl: number;
          infrastructure: 'local' | 'kubernetes';
          buildsDir: string;
          image: string | undefined;
          namespace: string | undefined;
        },
    ) => {
      const { startManagerNode } = await import('../cluster/manager-node.js');
      if (opts.infrastructure === 'kubernetes' && opts.image === undefined) {
        throw new PlatformError('INVALID_CONFIG', '--infrastructure kubernetes needs --image REPOSITORY');
      }
      let stop: (why: string) => void = () => {};
      const node = await startManagerNode({
        ...(await sharedSettings(opts)),
        managerId: opts.id,
        concurrency: opts.concurrency,
        reconcileIntervalMs: 1000,
        pool: opts.pool,
        listen: opts.listen,
        advertise: opts.advertise,
        followers: opts.followers ?? 'auto',
        leaderTtlSeconds: opts.leaderTtl,
        upgrades:
          opts.infrastructure === 'kubernetes'
            ? { infrastructure: 'kubernetes', imageRepository: opts.image ?? '', namespace: opts.namespace }
            : { infrastructure: 'local', buildsDir: resolve(opts.buildsDir) },
        launchArgs: launchArgsOf(process.argv, 'manager', opts.dataDir),
        onShutdown: (reason) => stop(`asked to leave (${reason})`),
      });
      announce(
        opts,
        `Savassan manager ${node.managerId} is running` +
          (node.controlAddress === null ? '' : `; Leader service on ${node.controlAddress}`),
        {
          role: 'manager',
          id: node.managerId,
          address: node.controlAddress,
        },
      );
      stop = untilSignal('stopping the manager', () => node.close());
    },
  );

  withWorkflowBackend(
    withBackends(
      withCommon(
        withApiKeyOptions(
          program
            .command('gateway')
            .description('run a gateway of a cluster: the HTTP API, calling agents over gRPC')
            .addHelpText(
              'after',
              '\nExamples:\n  savassan gateway --token-file /etc/savassan/token --api-key-file /etc/savassan/api-keys --host 0.0.0.0',
            )
            .addOption(
              new Option('--id <id>', "this gateway's id").default(
                `gateway-${hostname()}-${process.pid}`,
                'gateway-HOST-PID',
              ),
            )
            .option('--host <host>', 'address to listen on', '127.0.0.1')
            .option('--port <port>', 'port to listen on', integer, 8080),
        )
          .option('--queue-wait <seconds>', 'how long an invocation waits for an instance before 429', integer, 10)
          .option('--routing-listen <address>', 'where the leader pushes the routing table (host:port)', '127.0.0.1:0')
          .option(
            '--grpc-port <port>',
            'also serve the gRPC ExecutionService (workflow executions) on --host at this port (0 picks one)',
            integer,
          )
          .option('--region <region>', 'the region Lambda API ARNs name (default us-east-1)')
          .option('--account-id <id>', 'the 12-digit account id Lambda API ARNs name (default 000000000000)')
          .addOption(poolOption()),
      ),
    ),
  ).action(
    async (
      opts: CommonOptions &
        BackendOptions &
        WorkflowBackendFlags & {
          id: string;
          host: string;
          port: number;
          apiKey: string[] | undefined;
          apiKeyFile: string | undefined;
          queueWait: number;
          routingListen: string;
          grpcPort: number | undefined;
          region: string | undefined;
          accountId: string | undefined;
          pool: 'leader' | 'redis' | undefined;
        },
    ) => {
      const { startGatewayNode } = await import('../cluster/gateway-node.js');
      const gatewayId = opts.id;
      let stop: (why: string) => void = () => {};
      const node = await startGatewayNode({
        ...(await sharedSettings(opts)),
        gatewayId,
        pool: opts.pool,
        onShutdown: (reason) => stop(`asked to leave (${reason})`),
        launchArgs: launchArgsOf(process.argv, 'gateway', opts.dataDir),
        host: opts.host,
        port: opts.port,
        apiKeys: apiKeysFrom(opts),
        queueWaitMs: opts.queueWait * 1000,
        routingListen: opts.routingListen,
        grpcPort: opts.grpcPort,
        workflowBackend: workflowBackendFrom(opts),
        lambdaArnScope: {
          ...(opts.region === undefined ? {} : { region: opts.region }),
          ...(opts.accountId === undefined ? {} : { accountId: opts.accountId }),
        },
      });
      announce(
        opts,
        `Savassan gateway is listening on ${node.url}` +
          (node.grpcAddress === null ? '' : `; gRPC ExecutionService on ${node.grpcAddress}`),
        {
          role: 'gateway',
          id: gatewayId,
          address: node.url,
          ...(node.grpcAddress === null ? {} : { grpc: node.grpcAddress }),
        },
      );
      stop = untilSignal('stopping the gateway', () => node.close());
    },
  );
}

/** Where `savassan upgrade --to VERSION` looks for installed builds by default (the cluster code keeps the same). */
const defaultBuildsDir = '/opt/savassan/builds';

/** `--pool`: where the cluster's warm pool lives (default: Redis when --redis is given, else the leader). */
function poolOption(): Option {
  return new Option(
    '--pool <where>',
    'where the warm pool and provisioning queue live: held by the control-plane leader (no Redis), or in Redis (default: redis with --redis, else leader)',
  )
    .choices(['leader', 'redis'])
    .env('SAVASSAN_POOL');
}
