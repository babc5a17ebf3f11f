// Test kit: a real redis-server from the system package, on a random loopback port, with nothing persisted.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';

import { freeLoopbackPort } from './free-port.js';
import { spawnServer } from './spawn-server.js';

/** The redis-server binary the kit runs; `SAVASSAN_REDIS_SERVER` overrides it. */
export const redisServerBinary = process.env.SAVASSAN_REDIS_SERVER ?? '/usr/bin/redis-server';

const START_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 5;

/** A running redis-server owned by the test. */
export interface RedisServer {
  /** `redis://127.0.0.1:{port}/0` */
  readonly url: string;
  readonly port: number;
  /** The server's working directory (a fresh temp dir). */
  readonly dir: string;
  /** Whether the server process is running now. */
  readonly running: boolean;
  /** Ends the server (SIGKILL by default: a crash, all data lost) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port (stopping it first if it runs), empty, and waits until it answers. */
  restart(): Promise<void>;
  /** Deletes every key of every database. */
  flushAll(): Promise<void>;
  /** Keys that start with `prefix`. */
  keys(prefix?: string): Promise<string[]>;
  /** Deletes every key that starts with `prefix`; returns how many there were. */
  deleteKeys(prefix: string): Promise<number>;
  /** Client connections open on the server, not counting the one this call uses. */
  clientCount(): Promise<number>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** Whether the redis-server binary is installed. */
export function redisServerAvailable(): boolean {
  return existsSync(redisServerBinary);
}

/** Starts redis-server on a free loopback port with `--save '' --appendonly no` in a temp dir. */
export async function startRedisServer(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sv-kit-redis-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freeLoopbackPort();
    try {
      const child = await spawnRedis(port, dir);
      return new RunningRedisServer(port, dir, child);
    } catch (err) {
      lastError = err; // most likely the port was taken between freeLoopbackPort() and the bind: try another
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`could not start ${redisServerBinary}`, { cause: lastError });
}

class RunningRedisServer implements RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;

  constructor(port: number, dir: string, child: ChildProcess) {
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}/0`;
    this.#child = child;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    await stopProcess(child, signal);
  }

  async restart(): Promise<void> {
    await this.stop();
    this.#child = await spawnRedis(this.port, this.dir);
  }

  async flushAll(): Promise<void> {
    await this.#admin((client) => client.flushall());
  }

  async keys(prefix = ''): Promise<string[]> {
    return this.#admin((client) => scanKeys(client, prefix));
  }

  async deleteKeys(prefix: string): Promise<number> {
    return this.#admin(async (client) => {
      const keys = await scanKeys(client, prefix);
      if (keys.length > 0) await client.unlink(...keys);
      return keys.length;
    });
  }

  async clientCount(): Promise<number> {
    const list = await this.#admin((client) => client.client('LIST'));
    return String(list).trim().split('\n').length - 1;
  }

  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Runs `command` on a short-lived connection of its own. */
  async #admin<T>(command: (client: Redis) => Promise<T>): Promise<T> {
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      return await command(client);
    } finally {
      client.disconnect();
    }
  }
}

async function scanKeys(client: Redis, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--daemonize', 'no', '--loglevel', 'warning');
  const { child, output, exited } = spawnServer(redisServerBinary, args);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await answersPing(port))) {
    if (exited() || Date.now() > deadline) {
      await stopProcess(child, 'SIGKILL');
      throw new Error(`redis-server on port ${port} did not start:\n${output()}`);
    }
    await sleep(20);
  }
  return child;
}

/** Sends a raw PING and waits briefly for +PONG. */
async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data: Buffer) => done(data.toString().startsWith('+PONG')));
  });
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}
