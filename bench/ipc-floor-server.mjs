// The IPC floor: a bare Node http server that hands each request to one of a pool of pre-started child
// processes as one NDJSON line over a Unix-domain socket, and answers with the line the child writes back
// (bench/ipc-floor-child.cjs runs the same no-op handler). One request at a time per child, a free-list of
// children, a FIFO of requests waiting for one. No validation, no records: the least any design that runs
// the handler in a separate process pays. Usage: node ipc-floor-server.mjs [children=32] [function=noop] (a folder
// of bench/functions: noop, or echo for the payload sizes)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const size = Number(process.argv[2] ?? 32);
const functionName = process.argv[3] ?? 'noop';
const dir = mkdtempSync(join(tmpdir(), 'ipc-floor-'));
const socketPath = join(dir, 'pool.sock');
const childPath = new URL('./ipc-floor-child.cjs', import.meta.url).pathname;

const free = []; // connections to children with no request in flight
const waiting = []; // [line, callback] for requests that found no free child

function send(conn, line, callback) {
  conn.callback = callback;
  conn.write(line);
}

function release(conn) {
  const next = waiting.shift();
  if (next === undefined) free.push(conn);
  else send(conn, next[0], next[1]);
}

const pool = createNetServer((conn) => {
  conn.setEncoding('utf8');
  conn.setNoDelay(true);
  let buffered = '';
  conn.on('data', (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const callback = conn.callback;
      conn.callback = undefined;
      release(conn);
      callback(line);
    }
  });
  conn.on('error', () => {});
  release(conn);
  if (free.length === size) startHttp();
});
pool.listen(socketPath);

const children = Array.from({ length: size }, () =>
  spawn(process.execPath, [childPath, socketPath, functionName], { stdio: ['ignore', 'ignore', 'inherit'] }),
);

const server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    // One line per request: re-encode only if the body itself spans lines.
    const line = `${body.includes('\n') ? JSON.stringify(JSON.parse(body)) : body || '{}'}\n`;
    const reply = (answer) => {
      // The child answers "R<result json>" or "E<error message>".
      if (answer.charCodeAt(0) === 82) {
        const text = answer.slice(1);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      } else {
        res.writeHead(502);
        res.end(answer.slice(1));
      }
    };
    const conn = free.pop();
    if (conn === undefined) waiting.push([line, reply]);
    else send(conn, line, reply);
  });
});
server.keepAliveTimeout = 60_000;

function startHttp() {
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`));
}

// On SIGTERM: stop listening, kill the children and wait for each to exit, remove the socket dir, exit.
// Should this process die any other way, the children see their socket close and exit by themselves.
process.on('SIGTERM', () => {
  server.closeAllConnections?.();
  server.close();
  pool.close();
  void Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', resolve);
          child.kill('SIGTERM');
        }),
    ),
  ).then(() => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});
