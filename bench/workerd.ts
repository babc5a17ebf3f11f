// workerd, Cloudflare's Workers runtime, as the bench's peer: a real serverless runtime serving the same no-op and
// an echo, measured beside Savassan. The binary comes with the `workerd` dev dependency (its platform package,
// `@cloudflare/workerd-linux-64` here); nothing is downloaded at run time.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

const require = createRequire(import.meta.url);

/** The path of the workerd binary for this platform, and the package's version. */
export function workerdBinary(): { path: string; version: string } {
  const workerd = require('workerd') as { default: string; version: string };
  return { path: workerd.default, version: workerd.version };
}

/**
 * Starts `workerd serve bench/workerd/config.capnp` and waits until both of its sockets (the no-op and the echo
 * worker) listen; their ports, chosen by workerd, arrive as JSON lines on its control fd.
 */
export async function startWorkerd() {
  const { path, version } = workerdBinary();
  const child = spawn(path, ['serve', join(import.meta.dirname, 'workerd', 'config.capnp'), '--control-fd=3'], {
    cwd: join(import.meta.dirname, 'workerd'),
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ports = new Map<string, number>();
  const control = createInterface({ input: child.stdio[3] as Readable });
  try {
    await new Promise<void>((resolve, reject) => {
      control.on('line', (line) => {
        const message = JSON.parse(line) as { event?: string; socket?: string; port?: number };
        if (message.event === 'listen' && message.socket !== undefined && message.port !== undefined) {
          ports.set(message.socket, message.port);
          if (ports.has('noop') && ports.has('echo')) resolve();
        }
      });
      void exited.then(() => reject(new Error('workerd exited before listening')));
    });
  } catch (err) {
    control.close();
    throw err;
  }
  const stop = async () => {
    control.close();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return {
    version,
    noopUrl: `http://127.0.0.1:${ports.get('noop')}/`,
    echoUrl: `http://127.0.0.1:${ports.get('echo')}/`,
    stop,
  };
}
