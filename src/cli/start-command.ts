// `savassan start`: the whole platform in this process. The platform is loaded when the command runs, so that the
// other commands start fast.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import type { SandboxKind } from '../embedded/embedded-platform.js';
import { withBackends, withNodeLimits } from './cluster-commands.js';
import { info, integer, out } from './output.js';
import { apiKeysFrom, readSecretFile, refuseSecretArgs, withApiKeyOptions } from './secret-args.js';
import { loggerOf } from './server-log.js';
import { untilSignal } from './signals.js';
import { withWorkflowBackend, workflowBackendFrom, type WorkflowBackendFlags } from './workflow-backend-options.js';
import { intelligenceFrom, withIntelligence, type IntelligenceFlags } from './intelligence-options.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface StartOptions extends WorkflowBackendFlags, IntelligenceFlags {
  dataDir: string;
  host: string;
  port: number;
  apiKey: string[] | undefined;
  apiKeyFile: string | undefined;
  sandbox: SandboxKind | undefined;
  queueWait: number;
  asyncQueueCapacity: number;
  allowLoopbackWebhooks?: boolean;
  requestTimeout: number;
  region: string | undefined;
  accountId: string | undefined;
  durability: 'process' | 'full';
  examples: boolean;
  stemCells: boolean;
  redis: string | undefined;
  db: string | undefined;
  s3: string | undefined;
  logLevel: string;
  nodeMemory: number | undefined;
  nodePids: number | undefined;
  freezeIdle: number | false | undefined;
  json: boolean | undefined;
  secretKeyFile: string | undefined;
  eventLoops: number | undefined;
  urlDomain: string | undefined;
  grpcPort: number | undefined;
}

export function addStartCommand(program: Command): void {
  const command = withApiKeyOptions(
    withNodeLimits(program.command('start'))
      .description('run the whole platform in this process (gateway, manager, agent) on embedded defaults')
      .option('--data-dir <dir>', 'where data lives', '.savassan')
      .option('--host <host>', 'address to listen on', '127.0.0.1')
      .option('--port <port>', 'port to listen on', integer, 8080),
  )
    .hook('preAction', (_command, action) => refuseSecretArgs(action))
    .addOption(
      new Option('--sandbox <kind>', 'sandbox runtime: bwrap where bubblewrap is installed, else process').choices([
        'process',
        'bwrap',
        'runc',
      ]),
    )
    .option('--queue-wait <seconds>', 'how long an invocation waits for a free instance before 429', integer, 10)
    .option(
      '--allow-loopback-webhooks',
      "let webhook destinations reach this host's loopback where a function's --allow-net lists it",
    )
    .option(
      '--async-queue-capacity <n>',
      'asynchronous invocations queued or running per function before 429',
      integer,
      10_000,
    )
    .option(
      '--request-timeout <seconds>',
      'how long a client may take to send a whole request (headers and body) before 408',
      integer,
      60,
    )
    .option('--region <region>', 'the region Lambda API ARNs name (default us-east-1)')
    .option('--account-id <id>', 'the 12-digit account id Lambda API ARNs name (default 000000000000)')
    .addOption(
      new Option('--durability <mode>', 'process: records survive a crash of this process; full: fsync every commit')
        .choices(['process', 'full'])
        .default('process'),
    )
    .option(
      '--url-domain <domain>',
      'serve function URLs on {name}.DOMAIN as well as on /fn/{name}/ (point *.DOMAIN at this server)',
    )
    .option(
      '--grpc-port <port>',
      'also serve the gRPC ExecutionService (workflow executions, proto/savassan/v1/execution.proto) on --host at this port (0 picks one)',
      integer,
    )
    .option('--no-examples', 'do not deploy the example functions and workflow on first start')
    .option('--no-stem-cells', 'do not keep pre-started sandboxes for fast cold starts')
    .option(
      '--event-loops <n>',
      'event loops serving the HTTP port (worker threads beside the main one); default: 1 below 8 cores, else a quarter of the cores (at most 16)',
      integer,
    );
  withIntelligence(withWorkflowBackend(withBackends(command)))
    .addOption(
      new Option(
        '--secret-key-file <file>',
        'file holding the key that seals environments and secrets (as SAVASSAN_SECRET_KEY)',
      ).env('SAVASSAN_SECRET_KEY_FILE'),
    )
    .option('--log-level <level>', 'server log level (debug, info, warn, error)', 'info')
    .option(
      '--json',
      'print one JSON line once serving: {url, dataDir, sandbox, backends, workflowBackend, intelligence, examples, apiKeys, grpc (with --grpc-port)}',
    )
    .addHelpText(
      'after',
      '\nEnvironment: SAVASSAN_SECRET_KEY (32 bytes as 64 hex digits or base64), or --secret-key-file, is the key\n' +
        'that seals function environments and secrets in the metadata store; without it the key lives in\n' +
        'DATA_DIR/secret.key. SAVASSAN_FLYTE_TOKEN is the bearer token sent to FlyteAdmin with --workflow-backend flyte.\n' +
        '\nExamples:\n  savassan start\n  SAVASSAN_API_KEY=$(openssl rand -hex 16) savassan start --host 0.0.0.0 --sandbox bwrap',
    )
    .action(start);
}

async function start(opts: StartOptions): Promise<void> {
  // Read once and dropped from this process's environment, so that nothing it starts inherits the key.
  const fromEnvironment = process.env.SAVASSAN_SECRET_KEY;
  delete process.env.SAVASSAN_SECRET_KEY;
  // A file keeps the key out of this process's environment (/proc/PID/environ) altogether.
  const secretKey =
    opts.secretKeyFile === undefined ? fromEnvironment : readSecretFile(opts.secretKeyFile, 'secret key').trim();
  const logger = await loggerOf(opts.logLevel);
  const { runtimeWarnings, startEmbedded } = await import('../embedded/embedded-platform.js');
  const { describeWorkflowBackend } = await import('../embedded/workflow-backend.js');
  const { describeIntelligence } = await import('../embedded/intelligence-options.js');
  const { readBuildInfo } = await import('../cluster/build.js');
  const platform = await startEmbedded({
    build: await readBuildInfo(),
    dataDir: opts.dataDir,
    host: opts.host,
    port: opts.port,
    apiKeys: apiKeysFrom(opts),
    urlDomain: opts.urlDomain,
    sandbox: opts.sandbox,
    queueWaitMs: opts.queueWait * 1000,
    asyncQueueCapacity: opts.asyncQueueCapacity,
    allowLoopbackWebhooks: opts.allowLoopbackWebhooks === true,
    requestTimeoutMs: opts.requestTimeout * 1000,
    ...(opts.region === undefined ? {} : { region: opts.region }),
    ...(opts.accountId === undefined ? {} : { accountId: opts.accountId }),
    durability: opts.durability,
    stemCells: opts.stemCells,
    nodeMemoryMB: opts.nodeMemory,
    nodePids: opts.nodePids,
    freezeIdleMs: opts.freezeIdle,
    eventLoops: opts.eventLoops,
    grpcPort: opts.grpcPort,
    workflowBackend: workflowBackendFrom(opts),
    intelligence: intelligenceFrom(opts),
    redisUrl: opts.redis,
    dbUrl: opts.db,
    s3Url: opts.s3,
    secretKey,
    logger,
  });
  // A second signal stops at once: sandboxes exit when their Agent's channel closes (bwrap ones also die with
  // this process).
  untilSignal('draining in-flight invocations and stopping sandboxes', () => platform.close());
  const warnings = platform.runtime.isolating
    ? runtimeWarnings(platform.runtime)
    : [
        '--sandbox process runs function code as plain processes with NO isolation from this host. Use it for development only.',
      ];
  for (const warning of warnings) info(`WARNING: ${warning}`);
  let deployed: string[] = [];
  if (opts.examples) {
    const { deployExamples } = await import('../embedded/examples.js');
    deployed = await deployExamples(
      platform.deployer,
      platform.workflows.deployer,
      platform.metadata,
      join(packageRoot, 'examples'),
      logger,
    );
  }
  const keys = platform.options.apiKeys.length;
  if (keys === 0) {
    info(
      'WARNING: no API key: every user of this host can use the API (deploy, invoke, read logs, and through a function read secrets); on a shared host set SAVASSAN_API_KEY or --api-key-file.',
    );
  }
  const { backends } = platform;
  if (opts.json === true) {
    out(
      JSON.stringify({
        url: platform.url,
        dataDir: platform.options.dataDir,
        sandbox: platform.runtime.kind,
        isolating: platform.runtime.isolating,
        backends,
        workflowBackend: describeWorkflowBackend(platform.options.workflowBackend),
        intelligence: describeIntelligence(platform.options.intelligence),
        examples: deployed,
        apiKeys: keys,
        ...(platform.grpcAddress === null ? {} : { grpc: platform.grpcAddress }),
      }),
    );
    return;
  }
  out(
    `Savassan is listening on ${platform.url} (data in ${platform.options.dataDir}, sandbox: ${platform.runtime.kind})`,
  );
  out(`Backends: pool and queue in ${backends.pool}; metadata in ${backends.metadata}; blobs in ${backends.blobs}`);
  if (platform.options.workflowBackend.kind !== 'builtin') {
    out(`Workflow executions run on ${describeWorkflowBackend(platform.options.workflowBackend)}`);
  }
  out(`Intelligence: ${describeIntelligence(platform.options.intelligence)}`);
  if (platform.grpcAddress !== null) out(`gRPC ExecutionService on ${platform.grpcAddress}`);
  if (deployed.length > 0) out(`Deployed the examples: ${deployed.join(', ')}`);
  out(`Console: ${platform.url}/console/`);
  if (keys > 0)
    out(
      `API keys: ${keys} key${keys === 1 ? '' : 's'}, required on every route but /, /healthz, /readyz, /v1/openapi.json and /console/`,
    );
  const header = keys > 0 ? ` -H 'Authorization: Bearer <key>'` : '';
  const env = `${keys > 0 ? 'SAVASSAN_API_KEY=<key> ' : ''}SAVASSAN_URL=${platform.url}`;
  out('Try:');
  if ((await platform.metadata.getFunction('hello')) !== null) {
    out(`  curl -s${header} -X POST ${platform.url}/v1/functions/hello/invoke -d '{"name":"Ada"}'`);
    out(`  ${env} npx savassan invoke hello --data '{"name":"Ada"}'`);
    if (deployed.includes('workflow greeting')) {
      out(`  ${env} npx savassan workflow run greeting --input name=Ada --wait`);
    }
  } else {
    out(`  curl -s${header} ${platform.url}/v1/functions`);
    out(`  ${env} npx savassan deploy hello ${join(packageRoot, 'examples', 'hello')}`);
  }
  out(`  ${env} npx savassan ls`);
  out('Press Ctrl-C to stop.');
}
