import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { freeLoopbackPort } from './free-port.js';

/**
 * What the PostgreSQL and MariaDB test kits share: a database server started from the system binaries, as an
 * unprivileged user when the tests run as root, on a random loopback port, its files in one temporary directory.
 */

/** A connection to one database of a test server, for checks the store's API cannot make. */
export interface SqlSession {
  /** Run one statement; the driver's error is thrown as it is. */
  query(statement: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** A real database server for tests. */
export interface SqlTestServer {
  /** `PostgreSQL` or `MariaDB`. */
  readonly engine: string;
  readonly host: string;
  readonly port: number;
  /** The test user's password, which `url()` carries. */
  readonly password: string;
  /** The URL of `database` on this server, with the test user and password. */
  url(database: string): string;
  /** Create a database with a fresh random name and return the name. */
  createDatabase(): Promise<string>;
  /** Drop a database, ending connections still on it. */
  dropDatabase(name: string): Promise<void>;
  /** A connection of the test user to `database`. */
  session(database: string): Promise<SqlSession>;
  /** End the server at once, as a crash would, keeping its data and port for `restart()`. */
  halt(): Promise<void>;
  /** Start the server again on the same port over the same data (halting it first if it runs). */
  restart(): Promise<void>;
  /** Halt the server and remove its directory. Idempotent. */
  stop(): Promise<void>;
}

/** A user and group id to run the server as. */
export interface Owner {
  uid: number;
  gid: number;
}

/** What differs between engines; `startSqlTestServer` does the rest. */
export interface EngineSpec {
  engine: string;
  /** System accounts to run the server as when the tests run as root, the first that exists. */
  accounts: readonly string[];
  /** Create the data directory under `dir` with a test user whose password is `password`. */
  initialise(context: InitContext): Promise<void>;
  /** The server's command line for `dir` and `port`. */
  daemon(dir: string, port: number): { command: string; args: string[] };
  /** A line the server logs once it accepts connections. */
  ready: RegExp;
  /** The signal that ends the server at once, as a crash would. */
  haltSignal: NodeJS.Signals;
  url(port: number, password: string, database: string): string;
  /** A connection to `database`, or to the server's administrative database when undefined. */
  connect(port: number, password: string, database: string | undefined): Promise<SqlSession>;
  createDatabase(name: string): string;
  dropDatabase(name: string): string;
}

/** What `EngineSpec.initialise` gets. */
export interface InitContext {
  dir: string;
  password: string;
  /** Run a setup tool as the server's owner; rejects with its output when it fails. */
  run: (command: string, args: string[]) => Promise<void>;
  /** Write a file in `dir`, readable by the server's owner only. */
  writeOwnedFile: (name: string, content: string) => Promise<string>;
}

const startTimeoutMs = 60_000;
const haltTimeoutMs = 15_000;
const outputLimit = 64 * 1024;

/** Start a server of `spec`'s engine on a free loopback port, in a fresh temporary directory. */
export async function startSqlTestServer(spec: EngineSpec): Promise<SqlTestServer> {
  const owner = await serviceAccount(spec.accounts);
  const dir = await mkdtemp(join(tmpdir(), `sv-kit-${spec.engine.toLowerCase()}-`));
  const server = new TestServer(spec, dir, owner, randomBytes(12).toString('hex'));
  try {
    if (owner !== undefined) await chown(dir, owner.uid, owner.gid);
    await spec.initialise({
      dir,
      password: server.password,
      run: (command, args) => runTool(command, args, dir, owner),
      writeOwnedFile: (name, content) => writeOwnedFile(join(dir, name), content, owner),
    });
    await server.startOnFreePort();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * One server for a whole test file, started by the first test that asks for it and stopped after the file's tests.
 *
 * @example
 * const server = sharedServer(startPostgresServer);
 * it('works', async () => { const pg = await server(); ... });
 */
export function sharedServer(start: () => Promise<SqlTestServer>): () => Promise<SqlTestServer> {
  let started: Promise<SqlTestServer> | undefined;
  after(async () => {
    const server = await started?.catch(() => undefined);
    await server?.stop();
  });
  return () => (started ??= start());
}

/** A random database name, safe unquoted on every engine. */
export function randomDatabaseName(): string {
  return `savassan_t_${randomBytes(6).toString('hex')}`;
}

class TestServer implements SqlTestServer {
  readonly engine: string;
  readonly host = '127.0.0.1';
  readonly password: string;
  readonly #spec: EngineSpec;
  readonly #dir: string;
  readonly #owner: Owner | undefined;
  #port = 0;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #onExit = (): void => this.#removeNow();

  constructor(spec: EngineSpec, dir: string, owner: Owner | undefined, password: string) {
    this.engine = spec.engine;
    this.password = password;
    this.#spec = spec;
    this.#dir = dir;
    this.#owner = owner;
    // A test file that dies without its `after` hooks still leaves no server or directory behind.
    process.once('exit', this.#onExit);
  }

  get port(): number {
    return this.#port;
  }

  url(database: string): string {
    return this.#spec.url(this.#port, this.password, database);
  }

  async createDatabase(): Promise<string> {
    const name = randomDatabaseName();
    await this.#admin(this.#spec.createDatabase(name));
    return name;
  }

  async dropDatabase(name: string): Promise<void> {
    await this.#admin(this.#spec.dropDatabase(name));
  }

  session(database: string): Promise<SqlSession> {
    return this.#spec.connect(this.#port, this.password, database);
  }

  async halt(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined) return;
    child.kill(this.#spec.haltSignal);
    const timer = setTimeout(() => child.kill('SIGKILL'), haltTimeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.halt();
    // The port can stay busy for a moment after a crash; the same port is the point of a restart, so wait for it.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#launch(this.#port);
        return;
      } catch (err) {
        if (attempt >= 5 || this.#stopped) throw err;
        await sleep(200 * attempt);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.halt();
    await rm(this.#dir, { recursive: true, force: true, maxRetries: 3 });
    process.removeListener('exit', this.#onExit);
  }

  /** First start: another process can take a probed port before the server binds it, so try a few. */
  async startOnFreePort(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.#port = await freeLoopbackPort();
      try {
        await this.#launch(this.#port);
        return;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  async #launch(port: number): Promise<void> {
    const { command, args } = this.#spec.daemon(this.#dir, port);
    const child = spawnAs(command, args, this.#dir, this.#owner);
    const output = captureOutput(child);
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve()); // it never started
    });
    try {
      await waitForOutput(child, output, this.#spec.ready, `${this.engine} on port ${port}`);
    } catch (err) {
      await this.halt();
      throw err;
    }
  }

  async #admin(statement: string): Promise<void> {
    const session = await this.#spec.connect(this.#port, this.password, undefined);
    try {
      await session.query(statement);
    } finally {
      await session.close();
    }
  }

  #removeNow(): void {
    this.#child?.kill('SIGKILL');
    rmSync(this.#dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** The account to run servers as when this process is root (they refuse to run as root); undefined otherwise. */
async function serviceAccount(candidates: readonly string[]): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const name of candidates) {
    const entry = passwd.split('\n').find((line) => line.startsWith(`${name}:`));
    const [, , uid, gid] = entry?.split(':') ?? [];
    if (uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`running as root, and none of the accounts ${candidates.join(', ')} exists to run the server as`);
}

function spawnAs(command: string, args: string[], cwd: string, owner: Owner | undefined): ChildProcess {
  return spawn(command, args, {
    cwd,
    ...(owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }),
    // Nothing from the caller's environment (PGDATA, MYSQL_HOST, a locale that is not installed) leaks in.
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Collect a child's stdout and stderr, keeping the last `outputLimit` characters. */
function captureOutput(child: ChildProcess): () => string {
  let text = '';
  const append = (chunk: Buffer): void => {
    text = (text + chunk.toString()).slice(-outputLimit);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => text;
}

function waitForOutput(child: ChildProcess, output: () => string, ready: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.stderr?.off('data', check);
      child.off('exit', exited);
      child.off('error', finish);
      if (err === undefined) resolve();
      else reject(err);
    };
    const check = (): void => {
      if (ready.test(output())) finish();
    };
    const exited = (code: number | null, signal: NodeJS.Signals | null): void =>
      finish(new Error(`${what} exited (${signal ?? String(code)}) before it was ready:\n${output()}`));
    const timer = setTimeout(
      () => finish(new Error(`${what} was not ready in ${startTimeoutMs} ms:\n${output()}`)),
      startTimeoutMs,
    );
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', exited);
    child.once('error', finish);
  });
}

/** Run a setup tool to completion as `owner`; rejects with its output when it fails. */
function runTool(command: string, args: string[], cwd: string, owner: Owner | undefined): Promise<void> {
  const child = spawnAs(command, args, cwd, owner);
  const output = captureOutput(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} failed (${signal ?? String(code)}):\n${output()}`));
    });
  });
}

async function writeOwnedFile(path: string, content: string, owner: Owner | undefined): Promise<string> {
  await writeFile(path, content, { mode: 0o600 });
  if (owner !== undefined) await chown(path, owner.uid, owner.gid);
  return path;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
