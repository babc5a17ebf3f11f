// Another local user against a running `savassan start --sandbox bwrap`: it must find no socket to connect to (not
// even while sandboxes are being created), read nothing in the data dir, and see neither a function's secret nor a
// socket path in any process's arguments or environment. The attacker is a real process running as nobody.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent } from '../../src/agent/agent.js';
import { readBundle } from '../../src/client/bundle.js';
import { compileFunctionConfig } from '../../src/core/function-config.js';
import { blobKeys } from '../../src/core/types.js';
import { BwrapRuntime } from '../../src/sandbox/bwrap-runtime.js';
import { eventually, startServer, type ServerProcess } from '../helpers/server-process.js';

const echo = fileURLToPath(new URL('../fixtures/functions/echo/', import.meta.url));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const nobody = 65534;

interface Attack {
  dataDir: string;
  /** The server's temporary directory (where sockets of a too deep data dir once went). */
  tmp: string;
  serverPid: number;
  secret: string;
  files: string[];
  watchMs: number;
}

interface Report {
  /** Unix socket paths in /proc/net/unix under the data dir or the server's temporary directory. */
  sockets: string[];
  /** Sockets it managed to connect to. */
  connected: string[];
  /** Files and directories of the data dir it could read. */
  readable: string[];
  /** `pid:cmdline|environ` where the secret or a socket path showed up. */
  leaks: string[];
  /** Processes whose command line it read (a sanity check that the scan works). */
  cmdlines: number;
  sawServer: boolean;
  /** Processes in the server's tree: itself and its sandboxes. */
  treeSize: number;
}

/**
 * The attacker: watches /proc/net/unix and connects to whatever socket appears for `watchMs`, tries to read every
 * file it was told of, then scans every process's cmdline and environ. Gets its orders on stdin (the secret is in
 * no argument), answers JSON on stdout.
 */
const attacker = String.raw`
const fs = require('node:fs');
const net = require('node:net');
const { dataDir, tmp, serverPid, secret, files, watchMs } = JSON.parse(fs.readFileSync(0, 'utf8'));
const report = { sockets: [], connected: [], readable: [], leaks: [], cmdlines: 0, sawServer: false, treeSize: 0 };
// The platform's own paths: the data dir, and its directories in the temporary directory (the test kit's database
// servers, started by other test files meanwhile, keep theirs under sv-kit-*).
const suspicious = (path) => path.startsWith(dataDir + '/') || path.startsWith(tmp + '/savassan-');
const tried = new Set();
function scanSockets() {
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const path = line.trim().split(/\s+/)[7];
    if (path === undefined || path.startsWith('@') || !suspicious(path) || tried.has(path)) continue;
    tried.add(path);
    report.sockets.push(path);
    const socket = net.createConnection(path);
    socket.on('connect', () => { report.connected.push(path); socket.destroy(); });
    socket.on('error', () => {});
  }
}
function scanFiles() {
  for (const file of files) {
    try {
      const st = fs.statSync(file);
      if (st.isDirectory()) fs.readdirSync(file); else fs.readFileSync(file);
      report.readable.push(file);
    } catch {}
  }
}
/** The server and its descendants (other Savassan servers may run on this host). */
function serverTree() {
  const parents = new Map();
  for (const pid of fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
      parents.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {}
  }
  const tree = new Set([String(serverPid)]);
  for (let grown = true; grown; ) {
    grown = false;
    for (const [pid, parent] of parents) if (tree.has(parent) && !tree.has(pid)) { tree.add(pid); grown = true; }
  }
  return tree;
}
function scanProcesses() {
  const markers = [secret, 'guest.sock', 'SAVASSAN_SOCKET'];
  const tree = serverTree();
  report.treeSize = tree.size;
  for (const pid of fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    if (Number(pid) === process.pid) continue;
    for (const what of ['cmdline', 'environ']) {
      let text;
      try { text = fs.readFileSync('/proc/' + pid + '/' + what, 'latin1'); } catch { continue; }
      if (what === 'cmdline') {
        report.cmdlines += 1;
        if (text.includes('--data-dir\0' + dataDir)) report.sawServer = true;
      }
      // The secret anywhere; socket paths in this server's processes.
      for (const marker of markers) {
        if (text.includes(marker) && (marker === secret || tree.has(pid))) report.leaks.push(pid + ':' + what + ':' + marker);
      }
    }
  }
}
const started = Date.now();
const timer = setInterval(() => {
  scanSockets();
  if (Date.now() - started < watchMs) return;
  clearInterval(timer);
  scanFiles();
  scanProcesses();
  setTimeout(() => process.stdout.write(JSON.stringify(report)), 200);
}, 5);
`;

function attack(orders: Attack): Promise<Report> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', attacker], {
      cwd: '/',
      uid: nobody,
      gid: nobody,
      env: { PATH: '/usr/bin:/bin' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`the attacker failed (${code}): ${err}`));
      resolve(JSON.parse(out) as Report);
    });
    child.stdin.end(JSON.stringify(orders));
  });
}

/** Every file and directory under `dir`, as root sees them. */
async function walk(dir: string): Promise<string[]> {
  const found: string[] = [dir];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await walk(path)));
    else if (entry.isFile()) found.push(path);
  }
  return found;
}

describe(
  'another local user against a bwrap node',
  {
    skip:
      (!existsSync('/usr/bin/bwrap') && 'bubblewrap is not installed') ||
      (!isRoot && 'needs root to run the attacker as another user'),
  },
  () => {
    let parent: string;
    let dataDir: string;
    let server: ServerProcess;
    const secret = `s3cret-${randomUUID()}`;

    before(async () => {
      // The parent is open to all, as /var/lib or a home directory may be: only the data dir's own mode protects it.
      parent = await mkdtemp(join(tmpdir(), 'sv-hostile-'));
      await chmod(parent, 0o755);
      dataDir = join(parent, 'data');
      server = await startServer(['--sandbox', 'bwrap', '--no-examples'], dataDir);
      await server.client.deploy('keeper', await readBundle(echo), { env: { API_TOKEN: secret } });
      // A sandbox initialised with the secret stays warm.
      await server.client.invoke('keeper', { hello: true });
    });
    after(async () => {
      await server?.cleanup();
      await rm(parent, { recursive: true, force: true });
    });

    it('finds no socket, reads nothing in the data dir and sees no secret while sandboxes run and start', async () => {
      const files = await eventually(
        () => walk(dataDir),
        (found) => found.some((file) => file.includes(join('blobs', 'logs'))),
      );
      assert.ok(files.some((file) => file.endsWith('savassan.db')));
      assert.ok(
        files.some((file) => file.includes(join('agent', 'code'))),
        'extracted code is on disk',
      );
      assert.ok(
        files.some((file) => file.includes(join('blobs', 'logs'))),
        'invocation logs are on disk',
      );
      const attacking = attack({ dataDir, tmp: tmpdir(), serverPid: server.pid, secret, files, watchMs: 3000 });
      // Sandboxes are created while it watches: a deploy's trial sandbox, a cold start and stem cell refills.
      // (A hijacked sandbox fails to start: keep going to see what the attacker got.)
      const starting = server.client
        .deploy('second', await readBundle(echo), { env: { API_TOKEN: secret } })
        .then(() => server.client.invoke('second', {}))
        .then(
          () => null,
          (err: unknown) => err,
        );
      const report = await attacking;
      const scanned = report.sawServer && report.cmdlines > 10 && report.treeSize > 2;
      assert.ok(scanned, `the attacker scanned the server and its sandboxes: ${JSON.stringify(report)}`);
      assert.deepEqual(report.sockets, [], 'no socket file of the platform exists');
      assert.deepEqual(report.connected, []);
      assert.deepEqual(report.readable, [], 'nothing in the data dir is readable by another user');
      assert.deepEqual(report.leaks, [], 'no secret or socket path in any process arguments or environment');
      assert.equal(await starting, null, 'sandboxes started while the attacker watched');
    });

    it('keeps the data dir 0700 and its files unreadable by others even were the dir opened', async () => {
      assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
      const files = (await walk(dataDir)).filter((file) => /savassan\.db|blobs/.test(file));
      assert.ok(files.length > 2);
      for (const file of files) {
        const { mode } = await stat(file);
        assert.equal(mode & 0o077, 0, `${file} is ${(mode & 0o777).toString(8)}`);
      }
    });
  },
);

describe(
  'a data dir inside a private directory, with bwrap',
  {
    // Without root a sandbox runs as the Agent's own user, which can walk the path: nothing would be tested.
    skip:
      (!existsSync('/usr/bin/bwrap') && 'bubblewrap is not installed') ||
      (!isRoot && 'needs root: only then do sandboxes run as users of their own'),
  },
  () => {
    it('runs sandboxes although their user cannot walk the path to the data dir', async () => {
      const home = await mkdtemp(join(tmpdir(), 'sv-home-'));
      await chmod(home, 0o700);
      const workDir = join(home, 'data', 'agent');
      const blobs = new FsBlobStore(join(home, 'data', 'blobs'));
      const runtime = await BwrapRuntime.open({ workDir, cgroupName: `savassan-test-${process.pid}-private` });
      const agent = new Agent({ nodeId: 'private', runtime, blobStore: blobs, workDir });
      try {
        const zip = await readBundle(echo);
        const sha = createHash('sha256').update(zip).digest('hex');
        await blobs.put(blobKeys.code(sha), zip);
        const config = compileFunctionConfig({ env: { GREETING: 'private' } });
        const ref = await agent.createSandbox({
          functionName: 'echo',
          incarnation: 'i1',
          version: 1,
          codeSha256: sha,
          config,
        });
        const outcome = await agent.invoke(ref.instanceId, {
          invocationId: randomUUID(),
          eventJson: Buffer.from('{"n":1}'),
          timeoutMs: 5000,
        });
        assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
        const body = JSON.parse(new TextDecoder().decode(outcome.payloadJson)) as {
          event: unknown;
          cwd: string;
          env: object;
        };
        assert.deepEqual(body.event, { n: 1 });
        assert.equal(body.cwd, '/var/task');
        assert.equal((body.env as { GREETING: string }).GREETING, 'private');
      } finally {
        await agent.close();
        await runtime.close();
        await blobs.close();
        await rm(home, { recursive: true, force: true });
      }
    });
  },
);
