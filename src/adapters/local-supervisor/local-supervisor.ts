import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { buildInfoClaim, describeBuild, isBuildText } from '../../core/build-info.js';
import { PlatformError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type {
  ControlProcess,
  Infrastructure,
  InstalledBuild,
  LaunchedProcess,
  LaunchSpec,
} from '../../core/ports/infrastructure.js';

export interface LocalSupervisorOptions {
  /** Where versions are installed: the version `0.2.0` is the build in `<buildsDir>/0.2.0/`. */
  buildsDir: string;
  /** Where the processes it launches keep their data (`<root>/<id>/`), log (`<root>/<id>.log`) and pid file. */
  root: string;
  /**
   * The environment of the processes it starts, and of `savassan version`: the leader's own. Secrets (the cluster
   * token, database URLs) reach new processes here, never as arguments.
   */
  env: NodeJS.ProcessEnv;
  logger?: Logger;
  /** The Node.js binary that runs the builds. Default: the one running this process. */
  nodePath?: string;
  /**
   * How long `retire` lets a process that was asked to shut down stop by itself before SIGTERM, and then SIGTERM
   * before SIGKILL. Default 10 s.
   */
  retireGraceMs?: number;
}

/** How long `savassan version --json` of a build may take. */
const versionTimeoutMs = 20_000;
/** Its output beyond this is cut off (it prints one short line). */
const versionOutputBytes = 64 * 1024;
/** A process that exits this soon after it was spawned did not start: launch fails with its log's tail. */
const startupWatchMs = 500;
/** How much of the log a failed start reports. */
const logTailBytes = 4096;
/** How often retire looks whether a process is gone. */
const pollMs = 100;
const longestId = 200;

/**
 * Runs the platform's processes on this host, for `savassan upgrade` on bare-metal hosts and in the tests: builds are
 * directories (`<dir>/bin/savassan.js`, `dist/`, `package.json`), a new process is a detached `node <dir>/bin/savassan.js
 * <role> …` in its own process group with its output in a log file, and old processes are stopped by signal once they
 * had their chance to leave by themselves. Only processes it launched (those with a pid file under `root`) are ever
 * signalled; the others stop themselves when asked to shut down.
 *
 * Every new process runs on the host of the manager that launches it (the leader), with the arguments of the process
 * it replaces: an address fixed there (a gateway's `--port`, a manager's `--listen`) must be free on this host, or
 * the launch fails with the new process's log.
 *
 * @example
 * const infrastructure = new LocalSupervisor({ buildsDir: '/opt/savassan', root: '/var/lib/savassan/procs', env: process.env });
 * const build = await infrastructure.resolve('0.2.0'); // /opt/savassan/0.2.0
 */
export class LocalSupervisor implements Infrastructure {
  readonly kind = 'local';
  readonly #buildsDir: string;
  readonly #root: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #logger: Logger;
  readonly #nodePath: string;
  readonly #graceMs: number;

  constructor(options: LocalSupervisorOptions) {
    this.#buildsDir = resolvePath(options.buildsDir);
    this.#root = resolvePath(options.root);
    this.#env = options.env;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'local-supervisor' });
    this.#nodePath = options.nodePath ?? process.execPath;
    this.#graceMs = options.retireGraceMs ?? 10_000;
  }

  /**
   * The build `target` names: a path (it contains `/` or starts with `.`) to an installation directory, or a version
   * installed under `buildsDir`. It is asked what it is (`savassan version --json`).
   */
  async resolve(target: string): Promise<InstalledBuild> {
    const byPath = target.includes('/') || target.startsWith('.');
    const shown = target.slice(0, 100);
    if (!byPath && !isBuildText(target)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `"${shown}" is neither a version (letters, digits and ._+-) nor a path to a build`,
      );
    }
    const dir = byPath ? resolvePath(target) : join(this.#buildsDir, target);
    const script = join(dir, 'bin', 'savassan.js');
    if (!(await isFile(script))) {
      throw new PlatformError(
        'NOT_FOUND',
        byPath
          ? `no Savassan build at ${dir}: ${script} does not exist`
          : `version ${target} is not installed: ${script} does not exist (builds are installed in ${this.#buildsDir}/<version>/)`,
      );
    }
    const output = await this.#askVersion(script, dir);
    let claimed: unknown;
    try {
      claimed = JSON.parse(lastLine(output));
    } catch {
      claimed = undefined;
    }
    const build = buildInfoClaim(claimed);
    if (build === undefined) {
      throw new PlatformError(
        'BAD_REQUEST',
        `${dir} is not a Savassan build: "savassan version --json" printed ${JSON.stringify(lastLine(output).slice(0, 200))}`,
      );
    }
    return { ...build, location: dir };
  }

  /** Start `node <location>/bin/savassan.js <role> …` like `spec.like`, with the new id and data directory. */
  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    checkId(spec.id);
    const dataDir = join(this.#root, spec.id);
    const logPath = join(this.#root, `${spec.id}.log`);
    const pidPath = join(this.#root, `${spec.id}.pid`);
    const args = withOption(withOption(spec.like.args, '--id', spec.id), '--data-dir', dataDir);
    const script = join(spec.build.location, 'bin', 'savassan.js');
    await mkdir(this.#root, { recursive: true, mode: 0o700 });

    const log = openSync(logPath, 'a', 0o600);
    let child;
    try {
      child = spawn(this.#nodePath, [script, spec.role, ...args], {
        detached: true,
        stdio: ['ignore', log, log],
        env: this.#env,
      });
    } finally {
      closeSync(log);
    }
    const exited = new Promise<string>((resolveExit) => {
      child.once('exit', (code, signal) => resolveExit(signal === null ? `code ${code}` : `signal ${signal}`));
    });
    await new Promise<void>((resolveSpawn, rejectSpawn) => {
      child.once('spawn', resolveSpawn);
      child.once('error', (err) =>
        rejectSpawn(new PlatformError('UNAVAILABLE', `cannot start ${this.#nodePath}: ${err.message}`, { cause: err })),
      );
    });
    const pid = child.pid;
    if (pid === undefined) throw new PlatformError('UNAVAILABLE', `${spec.role} ${spec.id} has no pid after spawn`);
    await writeFile(pidPath, `${pid}\n`, { mode: 0o600 });

    const early = await Promise.race([exited, sleep(startupWatchMs).then(() => undefined)]);
    if (early !== undefined) {
      await rm(pidPath, { force: true });
      throw new PlatformError(
        'UNAVAILABLE',
        `${spec.role} ${spec.id} (${describeBuild(spec.build)}) exited with ${early} right after it started; the end of ${logPath}:\n${await tail(logPath)}`,
      );
    }
    child.unref();
    this.#logger.info({ id: spec.id, role: spec.role, pid, log: logPath, build: spec.build }, 'process launched');
    return { id: spec.id, where: logPath };
  }

  /**
   * Make sure an old process is gone: one this supervisor launched gets `retireGraceMs` to exit by itself, then
   * SIGTERM to its process group, then SIGKILL after another grace. A process it did not launch is left alone (it
   * stops by itself when asked to shut down). A pid whose command line does not name savassan belongs to something
   * else (the process ended and the pid was reused): it is never signalled.
   */
  async retire(old: ControlProcess): Promise<void> {
    checkId(old.id);
    const pidPath = join(this.#root, `${old.id}.pid`);
    const pid = await readPid(pidPath);
    if (pid === undefined) {
      this.#logger.debug({ id: old.id }, 'not launched here: it stops by itself');
      return;
    }
    const logger = this.#logger.child({ id: old.id, pid });
    try {
      if (await this.#gone(pid, this.#graceMs)) return;
      logger.warn({ graceMs: this.#graceMs }, 'still running after its grace: SIGTERM');
      signalGroup(pid, 'SIGTERM');
      if (await this.#gone(pid, this.#graceMs)) return;
      logger.warn({ graceMs: this.#graceMs }, 'still running after SIGTERM: SIGKILL');
      signalGroup(pid, 'SIGKILL');
      if (!(await this.#gone(pid, this.#graceMs))) {
        throw new PlatformError('UNAVAILABLE', `${old.role} ${old.id} (pid ${pid}) survived SIGKILL`);
      }
    } finally {
      await rm(pidPath, { force: true });
    }
  }

  /** Whether the savassan process `pid` is gone, waiting up to `waitMs` for it to go. */
  async #gone(pid: number, waitMs: number): Promise<boolean> {
    const until = Date.now() + waitMs;
    for (;;) {
      if (!(await runsSavassan(pid))) return true;
      if (Date.now() >= until) return false;
      await sleep(pollMs);
    }
  }

  #askVersion(script: string, dir: string): Promise<string> {
    return new Promise((resolveOutput, rejectOutput) => {
      execFile(
        this.#nodePath,
        [script, 'version', '--json'],
        { timeout: versionTimeoutMs, maxBuffer: versionOutputBytes, env: this.#env, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err === null) {
            resolveOutput(stdout);
            return;
          }
          const why = stderr.trim().slice(-500) || err.message;
          rejectOutput(
            new PlatformError(
              'BAD_REQUEST',
              `${dir} is not a usable Savassan build: "savassan version --json" failed: ${why}`,
              {
                cause: err,
              },
            ),
          );
        },
      );
    });
  }
}

/**
 * `args` with `option` set to `value`: every `--option value` and `--option=value` form replaced by one
 * `--option value` (added at the end when absent).
 */
export function withOption(args: readonly string[], option: string, value: string): string[] {
  const out: string[] = [];
  let replaced = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const inline = arg.startsWith(`${option}=`);
    if (arg !== option && !inline) {
      out.push(arg);
      continue;
    }
    if (!inline) i++; // its value
    if (!replaced) out.push(option, value);
    replaced = true;
  }
  if (!replaced) out.push(option, value);
  return out;
}

function checkId(id: string): void {
  if (id === '' || id.length > longestId || id === '.' || id === '..' || !/^[^/\s\p{Cc}]+$/u.test(id)) {
    throw new PlatformError(
      'BAD_REQUEST',
      `"${id.slice(0, 100)}" cannot name a process: 1 to ${longestId} characters, no "/", spaces or control characters`,
    );
  }
}

function lastLine(text: string): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  return lines.at(-1)?.trim() ?? '';
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readPid(path: string): Promise<number | undefined> {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/**
 * Whether `pid` is a live process whose command line names savassan. A zombie (exited, not yet reaped) has an empty
 * command line, so it counts as gone.
 */
async function runsSavassan(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('savassan');
  } catch {
    return false;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function tail(path: string): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.slice(-logTailBytes).trimEnd();
  } catch {
    return '(no log)';
  }
}
