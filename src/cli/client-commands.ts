// The commands that talk to a running server: they load the HTTP client only, never the platform, so each one
// starts in a fraction of a second.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { PlatformError } from '../core/errors.js';
import { reportLine } from '../core/report.js';
import { ApiError, SavassanClient, invocationFacts } from '../client/client.js';
import type { InvocationFacts } from '../client/client.js';
import { info, integer, out, printJson, table } from './output.js';
import { printAsyncInvocation } from './dlq-commands.js';

const client = () => new SavassanClient();

function report(facts: InvocationFacts): string {
  return reportLine({ ...facts, id: facts.invocationId });
}

/** The event: `--data`, or `--file` (`-` for standard input). */
async function eventOf(opts: { data?: string; file?: string }): Promise<string> {
  if (opts.file === undefined) return opts.data ?? '{}';
  if (opts.data !== undefined) throw new PlatformError('BAD_REQUEST', 'give the event with --data or --file, not both');
  if (opts.file !== '-') return readFile(opts.file, 'utf8');
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk as string;
  return text;
}

/** `version 2`, or `version 2 of alias beta` (an alias other than live chose it). */
function ran(facts: InvocationFacts): string {
  return `version ${facts.version}${facts.alias === null || facts.alias === 'live' ? '' : ` of alias ${facts.alias}`}`;
}

/** An invocation's answer as `invoke --json` prints it: the facts, then the result or the error. */
function invocationJson(facts: InvocationFacts | null, outcome: { result: unknown } | { error: unknown }) {
  return { ...facts, ...outcome };
}

export function addClientCommands(program: Command): void {
  program
    .command('invoke')
    .description('invoke a function and print its result (JSON) on stdout')
    .argument('<name>', 'function name')
    .option('-d, --data <json>', 'the event, as JSON (default {})')
    .option('-f, --file <path>', 'read the event from a file; - reads standard input')
    .option('-q, --qualifier <qualifier>', 'a version number or an alias to invoke (default live)')
    .option('-v, --verbose', 'print the invocation id, start and version, and a REPORT line, on stderr')
    .option('--async', 'queue the event and print its invocation id (follow it with invocation NAME ID)')
    .option('--idempotency-key <key>', 'with --async: the same key within 24 h gives back the first invocation id')
    .option(
      '--json',
      'print {invocationId, start, version, alias, durationMs, initMs, peakMemoryBytes, memoryMB, result}',
    )
    .addHelpText(
      'after',
      `\nExamples:\n  savassan invoke hello --data '{"name":"Ada"}'\n  echo '{"name":"Ada"}' | savassan invoke hello -f - -v` +
        '\n  savassan invoke hello --qualifier 2\n  savassan invoke hello --qualifier beta' +
        '\n  savassan invoke billing --async --data \'{"order":42}\' --idempotency-key order-42',
    )
    .action(
      async (
        name: string,
        opts: {
          data?: string;
          file?: string;
          qualifier?: string;
          verbose?: boolean;
          json?: boolean;
          async?: boolean;
          idempotencyKey?: string;
        },
      ) => {
        const event = await eventOf(opts);
        if (opts.async === true) {
          const queued = await client().invokeAsync(name, event, {
            qualifier: opts.qualifier,
            idempotencyKey: opts.idempotencyKey,
          });
          if (opts.json === true) return printJson(queued);
          return out(queued.invocationId);
        }
        if (opts.idempotencyKey !== undefined) {
          throw new PlatformError('BAD_REQUEST', '--idempotency-key goes with --async');
        }
        let answer;
        try {
          answer = await client().invoke(name, event, { qualifier: opts.qualifier });
        } catch (err) {
          const facts = err instanceof ApiError ? invocationFacts(err.headers) : null;
          if (facts !== null && opts.verbose === true) {
            info(`invocation ${facts.invocationId} failed (${facts.start}, ${ran(facts)})`);
            info(report(facts));
          }
          throw err;
        }
        if (opts.verbose === true) {
          info(`invocation ${answer.invocationId} (${answer.start}, ${ran(answer)})`);
          info(report(answer));
        }
        if (opts.json === true) {
          const { payload, ...facts } = answer;
          printJson(invocationJson(facts, { result: JSON.parse(payload) as unknown }));
        } else out(answer.payload);
      },
    );

  program
    .command('logs')
    .description('print the logs of recent invocations of a function, or of one invocation, each with its REPORT line')
    .argument('<name>', 'function name')
    .option('-i, --invocation <id>', 'only this invocation (of this function)')
    .option('-n, --limit <n>', 'how many recent invocations', integer, 20)
    .option(
      '-f, --follow',
      'then print lines live as the function writes them, each after the start of its invocation id ' +
        "(stderr lines to stderr); with --invocation, only that invocation's lines",
    )
    .option(
      '--json',
      'print one JSON object per invocation and line: {invocationId, createdAt, status, log, report}; with ' +
        '--follow, live lines as {functionName, invocationId, version, stream, line, time}',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  savassan logs hello -n 5\n  savassan logs hello --follow\n  savassan logs hello -f -i INVOCATION_ID',
    )
    .action(async (name: string, opts: { invocation?: string; limit: number; follow?: boolean; json?: boolean }) => {
      const api = client();
      const print = (entry: {
        invocationId: string;
        createdAt: string;
        status: string;
        log: string;
        report: string;
      }) =>
        opts.json === true
          ? out(JSON.stringify(entry))
          : process.stdout.write(
              `--- ${entry.createdAt} ${entry.invocationId} ${entry.status}\n${entry.log}${entry.report}\n`,
            );
      if (opts.invocation !== undefined && opts.follow !== true) {
        const invocation = await api.getInvocation(opts.invocation);
        if (invocation.functionName !== name) {
          throw new PlatformError(
            'NOT_FOUND',
            `invocation ${opts.invocation} is not of function ${name} (it is of ${invocation.functionName})`,
          );
        }
        const log = await api.invocationLog(opts.invocation);
        if (opts.json === true) print({ ...invocation, invocationId: invocation.id, log });
        else process.stdout.write(`${log}${invocation.report}\n`);
        return;
      }
      if (opts.follow !== true) {
        if (opts.json !== true) return void process.stdout.write(await api.functionLogs(name, opts.limit));
        const { invocations } = await api.listInvocations(name, opts.limit);
        for (const invocation of invocations.reverse())
          print({ ...invocation, invocationId: invocation.id, log: await api.invocationLog(invocation.id) });
        return;
      }
      const only = opts.invocation === undefined ? '' : `&invocationId=${encodeURIComponent(opts.invocation)}`;
      const path = `/v1/functions/${encodeURIComponent(name)}/logs?follow=1&limit=${opts.limit}${only}`;
      const response = await api.request('GET', path);
      const printEvent = (event: string, data: string): void => {
        if (event === 'invocation') {
          print(JSON.parse(data) as Parameters<typeof print>[0]);
          return;
        }
        if (event === 'dropped') {
          const { missed } = JSON.parse(data) as { missed: number };
          info(`the server stopped the stream: this client did not keep up (${missed} lines missed)`);
          process.exitCode = 1;
          return;
        }
        if (event !== 'line') return;
        if (opts.json === true) {
          out(data);
          return;
        }
        const line = JSON.parse(data) as { invocationId: string | null; stream: 'stdout' | 'stderr'; line: string };
        // The start of the invocation id tells concurrent invocations apart; `-` is output outside any (its load).
        const text = `${line.invocationId?.slice(0, 8) ?? '-'.padEnd(8)} ${line.line}\n`;
        (line.stream === 'stderr' ? process.stderr : process.stdout).write(text);
      };
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body ?? []) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = frame.split('\n');
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
          const data = lines.find((l) => l.startsWith('data: '));
          if (data !== undefined) printEvent(event, data.slice(6));
        }
      }
    });

  program
    .command('ls')
    .description('list functions')
    .addHelpText('after', '\nExamples:\n  savassan ls\n  savassan ls --json | jq -r .functions[].name')
    .option('--json', 'print {functions: [...]} as GET /v1/functions answers')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listFunctions();
      if (opts.json === true) return printJson(answer);
      const { functions } = answer;
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
    .addHelpText('after', '\nExamples:\n  savassan rm hello')
    .argument('<name>', 'function name')
    .option('--json', 'print {deleted: NAME}')
    .action(async (name: string, opts: { json?: boolean }) => {
      await client().deleteFunction(name);
      if (opts.json === true) printJson({ deleted: name });
      else out(`deleted ${name}`);
    });

  program
    .command('versions')
    .description(
      "list a function's versions with their share of live's traffic and their figures over the last 5 minutes, " +
        'or make one current with --use',
    )
    .argument('<name>', 'function name')
    .option('--use <version>', 'make this version current: live at 100% on it (roll back or forward)', integer)
    .option('--json', 'print {versions: [...]}, or with --use the function as GET /v1/functions/NAME answers')
    .addHelpText('after', '\nExamples:\n  savassan versions hello\n  savassan versions hello --use 1')
    .action(async (name: string, opts: { use?: number; json?: boolean }) => {
      if (opts.use !== undefined) {
        const fn = await client().setCurrentVersion(name, opts.use);
        if (opts.json === true) printJson(fn);
        else out(`${name} now serves version ${fn.currentVersion}`);
        return;
      }
      const answer = await client().listVersions(name);
      if (opts.json === true) return printJson(answer);
      table([
        ['VERSION', 'CURRENT', 'TRAFFIC', 'INVOCATIONS', 'ERRORS', 'P99', 'CODE', 'SIZE', 'CREATED'],
        ...answer.versions.map((v) => [
          String(v.version),
          v.current ? '*' : '',
          `${Number((v.traffic * 100).toFixed(1))}%`,
          String(v.stats.invocations),
          String(v.stats.errors),
          v.stats.p99Ms === null ? '-' : `${Number(v.stats.p99Ms.toFixed(1))}ms`,
          v.codeSha256.slice(0, 12),
          String(v.codeSizeBytes),
          v.createdAt,
        ]),
      ]);
    });

  program
    .command('invocation')
    .description('look at one invocation')
    .command('show')
    .description(
      'show what is known of an invocation: function, version, status, timings, memory, error; or an asynchronous ' +
        "one's state and attempts",
    )
    .addHelpText('after', '\nExamples:\n  savassan invocation show 0b1e6f1c-7c1a-4f7e-9d62-3f8f2a9c1d20 --json')
    .argument('<id>', 'invocation id (invoke -v and invoke --async print it)')
    .option('--json', 'print the record as GET /v1/invocations/ID answers')
    .action(async (id: string, opts: { json?: boolean }) => {
      const answer = await client().getAsyncInvocation(id);
      if (opts.json === true) return printJson(answer);
      if ('invocationType' in answer) return printAsyncInvocation(answer);
      const invocation = answer;
      table([
        ['id', invocation.id],
        ['function', `${invocation.functionName} version ${invocation.version}`],
        ['status', invocation.status],
        ['start', invocation.start],
        ['created', invocation.createdAt],
        ['node', `${invocation.nodeId ?? '-'} (sandbox ${invocation.instanceId ?? '-'})`],
        ...(invocation.error === null
          ? []
          : [['error', `${invocation.error.name}: ${invocation.error.message}`.split('\n')[0] ?? '']]),
      ]);
      out(invocation.report);
    });

  program
    .command('nodes')
    .description('list nodes: status, sandbox runtime, sandboxes and capacity, stem cells, what the sandbox enforces')
    .addHelpText('after', '\nExamples:\n  savassan nodes')
    .option('--json', 'print {nodes: [...]} as GET /v1/nodes answers')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listNodes();
      if (opts.json === true) return printJson(answer);
      const { nodes } = answer;
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
      for (const n of nodes) {
        if (n.enforcement === undefined) continue;
        out('');
        out(`${n.nodeId} enforces:`);
        table([
          ['  LIMIT', 'MECHANISM', 'ENFORCED', 'NOTE'],
          ...Object.entries(n.enforcement).map(([limit, e]) => [
            `  ${limit}`,
            e.mechanism,
            e.enforced ? 'yes' : 'NO',
            e.note,
          ]),
        ]);
      }
      for (const n of nodes) for (const w of n.warnings) info(`warning (${n.nodeId}): ${w}`);
    });
}
