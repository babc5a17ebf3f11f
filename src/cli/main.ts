import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { ApiError, SavassanClient } from '../client/client.js';
import { readBundle } from '../client/bundle.js';
import { PlatformError } from '../core/errors.js';
import type { FunctionConfigInput } from '../core/function-config.js';
import type { Logger } from '../core/logger.js';
import { runtimeWarnings, startEmbedded } from '../embedded/embedded-platform.js';
import type { SandboxKind } from '../embedded/embedded-platform.js';
import { deployExamples } from '../embedded/examples.js';
import { addClusterCommands, withNodeLimits } from './cluster-commands.js';
import { readEnvFile } from './env-file.js';
import { untilSignal } from './signals.js';
import { apiKeysFrom, refuseSecretArgs, withApiKeyOptions } from './secret-args.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`not an integer: ${value}`);
  return n;
}

function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got ${value}`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** `--env-from` then `--env` (a flag wins over the file); undefined when neither is given. */
async function deployEnv(
  file: string | undefined,
  flags: Record<string, string> | undefined,
): Promise<Record<string, string> | undefined> {
  if (file === undefined) return flags;
  return { ...(await readEnvFile(file)), ...flags };
}

const out = (line: string) => process.stdout.write(`${line}\n`);
const info = (line: string) => process.stderr.write(`${line}\n`);

function table(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows)
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}

export function buildProgram(): Command {
  const program = new Command('savassan')
    .description(
      'Savassan: a self-hosted serverless platform. Server URL from SAVASSAN_URL (default http://127.0.0.1:8080), API key from SAVASSAN_API_KEY.',
    )
    .showHelpAfterError();
  const client = () => new SavassanClient();

  addClusterCommands(program);

  withApiKeyOptions(
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
      '--request-timeout <seconds>',
      'how long a client may take to send a whole request (headers and body) before 408',
      integer,
      60,
    )
    .addOption(
      new Option('--durability <mode>', 'process: records survive a crash of this process; full: fsync every commit')
        .choices(['process', 'full'])
        .default('process'),
    )
    .option('--no-examples', 'do not deploy the example functions on first start')
    .option('--no-stem-cells', 'do not keep pre-started sandboxes for fast cold starts')
    .addOption(
      new Option('--redis <url>', 'keep the warm pool and provisioning queue in Redis (redis://host:6379/0)').env(
        'SAVASSAN_REDIS_URL',
      ),
    )
    .addOption(
      new Option('--db <url>', 'keep metadata in PostgreSQL or MySQL (postgres://… or mysql://…), not SQLite').env(
        'SAVASSAN_DB_URL',
      ),
    )
    .addOption(
      new Option('--s3 <url>', 'keep code and logs in S3 (s3://KEY:SECRET@host/bucket or http://…/bucket)').env(
        'SAVASSAN_S3_URL',
      ),
    )
    .option('--log-level <level>', 'server log level (debug, info, warn, error)', 'info')
    .action(
      async (opts: {
        dataDir: string;
        host: string;
        port: number;
        apiKey: string[] | undefined;
        apiKeyFile: string | undefined;
        sandbox: SandboxKind | undefined;
        queueWait: number;
        requestTimeout: number;
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
      }) => {
        const logger = pino({ level: opts.logLevel }, pino.destination(2)) as unknown as Logger;
        const platform = await startEmbedded({
          dataDir: opts.dataDir,
          host: opts.host,
          port: opts.port,
          apiKeys: apiKeysFrom(opts),
          sandbox: opts.sandbox,
          queueWaitMs: opts.queueWait * 1000,
          requestTimeoutMs: opts.requestTimeout * 1000,
          durability: opts.durability,
          stemCells: opts.stemCells,
          nodeMemoryMB: opts.nodeMemory,
          nodePids: opts.nodePids,
          freezeIdleMs: opts.freezeIdle,
          redisUrl: opts.redis,
          dbUrl: opts.db,
          s3Url: opts.s3,
          logger,
        });
        if (!platform.runtime.isolating) {
          info(
            'WARNING: --sandbox process runs function code as plain processes with NO isolation from this host. Use it for development only.',
          );
        } else {
          for (const warning of runtimeWarnings(platform.runtime)) info(`WARNING: ${warning}`);
        }
        const deployed = opts.examples
          ? await deployExamples(platform.deployer, platform.metadata, join(packageRoot, 'examples'), logger)
          : [];
        out(
          `Savassan is listening on ${platform.url} (data in ${platform.options.dataDir}, sandbox: ${platform.runtime.kind})`,
        );
        const { backends } = platform;
        out(
          `Backends: pool and queue in ${backends.pool}; metadata in ${backends.metadata}; blobs in ${backends.blobs}`,
        );
        if (deployed.length > 0) out(`Deployed the examples: ${deployed.join(', ')}`);
        const keyed = platform.options.apiKeys.length > 0;
        if (keyed) {
          const n = platform.options.apiKeys.length;
          out(
            `API keys: ${n} key${n === 1 ? '' : 's'}, required on every route but /healthz, /readyz, /v1/openapi.json`,
          );
        } else {
          info(
            'WARNING: no API key: every user of this host can use the API (deploy, invoke, read logs); on a shared host set SAVASSAN_API_KEY or --api-key-file.',
          );
        }
        const header = keyed ? ` -H 'Authorization: Bearer <key>'` : '';
        const env = `${keyed ? 'SAVASSAN_API_KEY=<key> ' : ''}SAVASSAN_URL=${platform.url}`;
        out('Try:');
        out(`  curl -s${header} -X POST ${platform.url}/v1/functions/hello/invoke -d '{"name":"Ada"}'`);
        out(`  ${env} npx savassan invoke hello --data '{"name":"Ada"}'`);
        out(`  ${env} npx savassan ls`);
        out('Press Ctrl-C to stop.');
        // A second signal stops at once: sandboxes exit when their Agent's channel closes (bwrap ones also die
        // with this process).
        untilSignal('draining in-flight invocations and stopping sandboxes', () => platform.close());
      },
    );

  program
    .command('deploy')
    .description('deploy a function from a directory or .zip (creates a new immutable version)')
    .argument('<name>', 'function name')
    .argument('<path>', 'directory or .zip holding the code and its node_modules')
    .option('--handler <file.export>', 'handler, default index.handler')
    .option('--runtime <runtime>', 'runtime: nodejs20 (default) or nodejs24')
    .option('--env <KEY=VALUE>', 'environment variable (repeatable)', keyValue)
    .option('--env-from <file>', 'environment variables from a file of KEY=VALUE lines (for secrets: argv is public)')
    .option('--timeout <seconds>', 'timeout in seconds', integer)
    .option('--memory <mb>', 'memory limit in MB', integer)
    .option('--max-instances <n>', 'max concurrent instances', integer)
    .option('--min-instances <n>', 'instances kept warm', integer)
    .option('--idle <seconds>', 'keep-alive of an idle instance', integer)
    .option('--network', 'let the function reach the network (isolating sandboxes have none otherwise)')
    .option(
      '--allow-net <cidr>',
      'with --network, an IPv4 CIDR the function may reach although private ranges are denied (repeatable)',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .action(async (name: string, path: string, opts: Record<string, unknown>) => {
      const config: FunctionConfigInput = {
        handler: opts.handler as string | undefined,
        runtime: opts.runtime as string | undefined,
        env: await deployEnv(opts.envFrom as string | undefined, opts.env as Record<string, string> | undefined),
        timeoutSeconds: opts.timeout as number | undefined,
        memoryMB: opts.memory as number | undefined,
        maxInstances: opts.maxInstances as number | undefined,
        minInstances: opts.minInstances as number | undefined,
        idleSeconds: opts.idle as number | undefined,
        network: opts.network === true ? true : undefined,
        allowNet: opts.allowNet as string[] | undefined,
      };
      const answer = await client().deploy(name, await readBundle(path), config);
      out(
        answer.created
          ? `deployed ${name} version ${answer.version.version} (code ${answer.version.codeSha256.slice(0, 12)})`
          : `${name} is unchanged: version ${answer.version.version} is current`,
      );
    });

  program
    .command('invoke')
    .description('invoke a function and print its result (JSON) on stdout')
    .argument('<name>', 'function name')
    .option('-d, --data <json>', 'the event, as JSON', '{}')
    .option('-f, --file <path>', 'read the event from a file')
    .option('-v, --verbose', 'print invocation id, start kind and version on stderr')
    .action(async (name: string, opts: { data: string; file?: string; verbose?: boolean }) => {
      const event = opts.file === undefined ? opts.data : await readFile(opts.file, 'utf8');
      const answer = await client().invoke(name, event);
      if (opts.verbose === true) info(`invocation ${answer.invocationId} (${answer.start}, version ${answer.version})`);
      out(answer.payload);
    });

  program
    .command('logs')
    .description('print the logs of recent invocations of a function, or of one invocation')
    .argument('<name>', 'function name')
    .option('-i, --invocation <id>', 'only this invocation')
    .option('-n, --limit <n>', 'how many recent invocations', integer, 20)
    .option('-f, --follow', 'keep printing new invocations as they finish')
    .action(async (name: string, opts: { invocation?: string; limit: number; follow?: boolean }) => {
      if (opts.invocation !== undefined) {
        process.stdout.write(await client().invocationLog(opts.invocation));
        return;
      }
      if (opts.follow !== true) {
        process.stdout.write(await client().functionLogs(name, opts.limit));
        return;
      }
      const response = await client().request(
        'GET',
        `/v1/functions/${encodeURIComponent(name)}/logs?follow=1&limit=${opts.limit}`,
      );
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body ?? []) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split('\n').find((l) => l.startsWith('data: '));
          if (data === undefined) continue;
          const entry = JSON.parse(data.slice(6)) as {
            invocationId: string;
            createdAt: string;
            status: string;
            log: string;
          };
          process.stdout.write(`--- ${entry.createdAt} ${entry.invocationId} ${entry.status}\n${entry.log}`);
        }
      }
    });

  program
    .command('ls')
    .description('list functions')
    .action(async () => {
      const { functions } = await client().listFunctions();
      if (functions.length === 0) {
        info('no functions deployed; try: savassan deploy hello ./examples/hello');
        return;
      }
      table([
        ['NAME', 'VERSION', 'HANDLER', 'MEMORY', 'TIMEOUT', 'UPDATED'],
        ...functions.map((f) => [
          f.name,
          String(f.currentVersion),
          f.config?.handler ?? '',
          `${f.config?.memoryMB ?? '?'}MB`,
          `${f.config?.timeoutSeconds ?? '?'}s`,
          f.updatedAt,
        ]),
      ]);
    });

  program
    .command('rm')
    .description('delete a function and all its versions')
    .argument('<name>', 'function name')
    .action(async (name: string) => {
      await client().deleteFunction(name);
      out(`deleted ${name}`);
    });

  program
    .command('versions')
    .description("list a function's versions, or make an older one current with --use")
    .argument('<name>', 'function name')
    .option('--use <version>', 'make this version current (roll back or forward)', integer)
    .action(async (name: string, opts: { use?: number }) => {
      if (opts.use !== undefined) {
        const fn = await client().setCurrentVersion(name, opts.use);
        out(`${name} now serves version ${fn.currentVersion}`);
        return;
      }
      const { versions } = await client().listVersions(name);
      table([
        ['VERSION', 'CURRENT', 'CODE', 'SIZE', 'CREATED'],
        ...versions.map((v) => [
          String(v.version),
          v.current ? '*' : '',
          v.codeSha256.slice(0, 12),
          String(v.codeSizeBytes),
          v.createdAt,
        ]),
      ]);
    });

  program
    .command('nodes')
    .description('list nodes: status, sandbox runtime, sandboxes and capacity, stem cells')
    .action(async () => {
      const { nodes } = await client().listNodes();
      table([
        ['NODE', 'STATUS', 'SANDBOX', 'ISOLATING', 'SANDBOXES', 'CAPACITY', 'STEM CELLS', 'ADDRESS'],
        ...nodes.map((n) => [
          n.nodeId,
          n.status,
          n.sandboxRuntime,
          n.isolating ? 'yes' : 'NO',
          String(n.sandboxes),
          n.capacity === undefined ? '-' : String(n.capacity),
          n.stemCells === undefined ? '-' : String(n.stemCells.idle),
          n.agentAddress ?? '-',
        ]),
      ]);
      for (const n of nodes) for (const w of n.warnings) info(`warning (${n.nodeId}): ${w}`);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ApiError) {
      info(`error: ${err.message}`);
      const stack = err.body.stack;
      if (typeof stack === 'string') info(stack);
      const retry = err.headers.get('retry-after');
      if (retry !== null) info(`retry after ${retry} s`);
    } else if (err instanceof PlatformError) {
      info(`error: ${err.message}`);
    } else {
      info(`error: ${err instanceof Error ? err.message : String(err)}`);
    }
    process.exitCode = 1;
  }
}
