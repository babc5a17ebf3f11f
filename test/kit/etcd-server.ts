// Test kit: a real single-member etcd from the system package, on random loopback ports, its data in a temp dir.
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { freeLoopbackPort } from './free-port.js';
import { spawnServer } from './spawn-server.js';

/** The etcd binary the kit runs; `SAVASSAN_ETCD` overrides it. */
export const etcdBinary = process.env.SAVASSAN_ETCD ?? '/usr/bin/etcd';
/** etcdctl, for checks the adapter's API cannot make; `SAVASSAN_ETCDCTL` overrides it. */
export const etcdctlBinary = process.env.SAVASSAN_ETCDCTL ?? '/usr/bin/etcdctl';

const START_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 5;

/** A running etcd owned by the test. */
export interface EtcdServer {
  /** `['http://127.0.0.1:{clientPort}']` */
  readonly endpoints: string[];
  readonly clientPort: number;
  readonly peerPort: number;
  /** Whether the etcd process is running now. */
  readonly running: boolean;
  /** Ends etcd at once (SIGKILL, a crash), keeping its data and ports for `restart()`. */
  kill(): Promise<void>;
  /** Starts etcd again on the same ports over the same data (killing it first if it runs) and waits until healthy. */
  restart(): Promise<void>;
  /** Runs etcdctl against this server and returns its standard output. */
  ctl(args: string[]): Promise<string>;
  /** Kills etcd and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** PEM files for an etcd that serves its clients over TLS and requires a client certificate signed by `ca`. */
export interface EtcdTlsFiles {
  ca: string;
  /** etcd's certificate and key (for the host it listens on). */
  serverCert: string;
  serverKey: string;
  /** A client certificate and key, which `ctl()` uses. */
  clientCert: string;
  clientKey: string;
}

/** Whether the etcd binary is installed. */
export function etcdAvailable(): boolean {
  return existsSync(etcdBinary);
}

const directories = new Set<string>();
// A test run that crashes must not leave directories behind (nor servers: see spawnServer).
process.once('exit', () => {
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});

/**
 * Starts a one-member etcd on free loopback client and peer ports, with a fresh data dir, and waits until it reports
 * healthy. Heartbeat and election timeout are a tenth of the defaults, which makes 1 s the shortest lease TTL etcd
 * grants (2 s with the defaults) and a restart take well under a second.
 */
export async function startEtcdServer(options: { host?: string; tls?: EtcdTlsFiles } = {}): Promise<EtcdServer> {
  const host = options.host ?? '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'sv-kit-etcd-'));
  directories.add(dir);
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const [clientPort, peerPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
    if (clientPort === peerPort) continue;
    const server = new RunningEtcdServer(dir, clientPort, peerPort, host, options.tls);
    try {
      await server.restart();
      return server;
    } catch (err) {
      // Most likely a port was taken between freeLoopbackPort() and the bind: start over with new ports and data.
      lastError = err;
      await server.kill();
      await rm(join(dir, 'data'), { recursive: true, force: true });
    }
  }
  directories.delete(dir);
  await rm(dir, { recursive: true, force: true });
  throw new Error(`could not start ${etcdBinary}`, { cause: lastError });
}

class RunningEtcdServer implements EtcdServer {
  readonly endpoints: string[];
  readonly clientPort: number;
  readonly peerPort: number;
  readonly #dir: string;
  readonly #host: string;
  readonly #tls: EtcdTlsFiles | undefined;
  #child: ChildProcess | undefined;
  #stopped = false;

  constructor(dir: string, clientPort: number, peerPort: number, host: string, tls?: EtcdTlsFiles) {
    this.#dir = dir;
    this.#host = host;
    this.#tls = tls;
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.endpoints = [`${tls === undefined ? 'http' : 'https'}://${host}:${clientPort}`];
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    await killProcess(child);
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error('etcd test server was stopped');
    await this.kill();
    const [client = ''] = this.endpoints;
    const tls = this.#tls;
    const peer = `http://${this.#host}:${this.peerPort}`;
    const args = [
      ...['--name', 'test', '--data-dir', join(this.#dir, 'data')],
      ...['--listen-client-urls', client, '--advertise-client-urls', client],
      ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer],
      ...['--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new'],
      ...['--heartbeat-interval', '10', '--election-timeout', '100'],
      ...['--logger', 'zap', '--log-level', 'warn'],
      ...(tls === undefined
        ? []
        : [
            '--cert-file',
            tls.serverCert,
            '--key-file',
            tls.serverKey,
            '--trusted-ca-file',
            tls.ca,
            '--client-cert-auth',
          ]),
    ];
    const { child, output, exited } = spawnServer(etcdBinary, args);
    this.#child = child;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await healthy(client, tls))) {
      if (exited() || Date.now() > deadline) {
        await this.kill();
        throw new Error(`etcd on port ${this.clientPort} did not become healthy:\n${output()}`);
      }
      await sleep(20);
    }
  }

  ctl(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const env = { ...process.env, ETCDCTL_API: '3' };
      const tls = this.#tls;
      const secure = tls === undefined ? [] : ['--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey];
      const all = ['--endpoints', this.endpoints.join(','), ...secure, ...args];
      execFile(etcdctlBinary, all, { env }, (err, stdout, stderr) => {
        if (err) reject(new Error(`etcdctl ${args.join(' ')} failed: ${stderr}`, { cause: err }));
        else resolve(stdout);
      });
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.kill();
    directories.delete(this.#dir);
    await rm(this.#dir, { recursive: true, force: true });
  }
}

/** etcd's /health answers `{"health":"true"}` once the member has a leader and serves requests. */
async function healthy(clientUrl: string, tls: EtcdTlsFiles | undefined): Promise<boolean> {
  if (tls !== undefined) return healthyOverTls(clientUrl, tls);
  try {
    const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
    const body = (await response.json()) as { health?: string };
    return response.ok && body.health === 'true';
  } catch {
    return false;
  }
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function healthyOverTls(clientUrl: string, tls: EtcdTlsFiles): Promise<boolean> {
  const [ca, cert, key] = await Promise.all([tls.ca, tls.clientCert, tls.clientKey].map((file) => readFile(file)));
  return new Promise((resolve) => {
    const request = httpsGet(`${clientUrl}/health`, { ca, cert, key, timeout: 1_000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(response.statusCode === 200 && body.includes('"health":"true"')));
      response.on('error', () => resolve(false));
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}
