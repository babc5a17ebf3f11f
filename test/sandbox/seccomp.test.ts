// The seccomp filter bwrap sandboxes get, tried from inside a real bubblewrap sandbox. Node has no syscall API, so
// the calls are made by the host's python3 (ctypes `syscall()`), bound read-only into a sandbox with the same
// namespaces, uid and capabilities as a function's. The same calls without the filter show the test can tell.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { seccompArches, seccompFilter } from '../../src/sandbox/seccomp.js';

const arch = ({ x64: 'x86_64', arm64: 'aarch64' } as const)[process.arch as 'x64' | 'arm64'] as
  keyof typeof seccompArches | undefined;
const python = '/usr/bin/python3';
const EPERM = 1;
const EINVAL = 22;
const ENOSYS = 38;
const SIGSYS = 31;

function skipReason(): string | false {
  if (process.platform !== 'linux') return 'Linux only';
  if (arch === undefined) return `no seccomp filter for ${process.arch}`;
  if (!existsSync('/usr/bin/bwrap')) return 'bubblewrap is not installed';
  if (!existsSync(python)) return `${python} is not installed`;
  return false;
}

/**
 * Makes each call and prints `{name: errno}` (0 for success). `ptrace(PTRACE_TRACEME)` comes last: once traced,
 * the next signal would stop the probe. `x32` is the signal that killed a child making an x32 syscall (0: none).
 */
const probe = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
N = json.loads(sys.argv[1])
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
out = {'getpid': call(N['getpid'])}
out['io_uring_setup'] = call(N['io_uring_setup'], 1, ctypes.create_string_buffer(120))
attr = ctypes.create_string_buffer(128)  # PERF_TYPE_SOFTWARE, size 128, CPU clock, exclude_kernel and _hv
ctypes.memmove(attr, (1).to_bytes(4, 'little') + (128).to_bytes(4, 'little'), 8)
attr[40] = 0x60
out['perf_event_open'] = call(N['perf_event_open'], attr, 0, -1, -1, 0)
out['keyctl'] = call(N['keyctl'], 0, -4, 0)  # KEYCTL_GET_KEYRING_ID of the user keyring
out['clone3'] = call(N['clone3'], 0, 0)
ctypes.set_errno(0)
r = libc.syscall(ctypes.c_long(N['clone']), ctypes.c_long(0x10000000 | 17), *[ctypes.c_long(0)] * 4)
if r == 0: os._exit(0)
out['clone_newuser'] = 0 if r > 0 else ctypes.get_errno()
if r > 0: os.waitpid(r, 0)
out['unshare'] = call(N['unshare'], 0x10000000)  # after clone: it leaves this process unmapped in a new userns
pid = os.fork()
if pid == 0: os._exit(0)
os.waitpid(pid, 0)
out['fork'] = 0
if 'x32' in N:
    pid = os.fork()
    if pid == 0:
        libc.syscall(ctypes.c_long(N['x32']))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    out['x32'] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
out['ptrace'] = call(N['ptrace'], 0, 0, 0, 0)  # PTRACE_TRACEME
print(json.dumps(out), flush=True)
`;

const getpid = { x86_64: 39, aarch64: 172 } as const;

/** Runs the probe in a bwrap sandbox like a function's, with or without the filter on descriptor 3. */
async function runProbe(filter: Buffer | null): Promise<Record<string, number>> {
  assert.ok(arch !== undefined);
  const numbers: Record<string, number> = { ...seccompArches[arch].numbers, getpid: getpid[arch] };
  if (arch === 'x86_64') numbers['x32'] = 0x40000000 | getpid.x86_64;
  const args = [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--uid',
    '1000',
    '--gid',
    '1000',
    '--cap-drop',
    'ALL',
    '--clearenv',
    '--ro-bind',
    '/usr',
    '/usr',
    ...['bin', 'lib', 'lib64'].flatMap((dir) => ['--symlink', `usr/${dir}`, `/${dir}`]),
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    ...(filter === null ? [] : ['--seccomp', '3']),
    '--',
    python,
    '-I',
    '-c',
    probe,
    JSON.stringify(numbers),
  ];
  // As an unprivileged host user, as the runtimes start sandboxes when the agent is root.
  const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const child = spawn('/usr/bin/bwrap', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], ...user });
  (child.stdio[3] as Writable).end(filter ?? Buffer.alloc(0));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, `bwrap exited ${code}: ${stderr}`);
  return JSON.parse(stdout) as Record<string, number>;
}

function sysctl(path: string): number | null {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch {
    return null;
  }
}

describe('the seccomp filter in a real bubblewrap sandbox', { skip: skipReason() }, () => {
  it('refuses io_uring, perf, keyrings, ptrace and new user namespaces; ordinary calls still work', async () => {
    const filtered = await runProbe(seccompFilter());
    assert.deepEqual(filtered, {
      getpid: 0,
      fork: 0,
      io_uring_setup: EPERM,
      perf_event_open: EPERM,
      keyctl: EPERM,
      clone_newuser: EPERM,
      unshare: EPERM,
      ptrace: EPERM,
      clone3: ENOSYS,
      ...(arch === 'x86_64' ? { x32: SIGSYS } : {}),
    });
  });

  it('without the filter, the same sandbox makes those calls (so the test above can fail)', async () => {
    const open = await runProbe(null);
    // What the host's own policy refuses anyway does not show the filter's absence.
    const hostAllowsIoUring = (sysctl('/proc/sys/kernel/io_uring_disabled') ?? 0) === 0;
    const hostAllowsPerf = (sysctl('/proc/sys/kernel/perf_event_paranoid') ?? 2) <= 2;
    const hostAllowsTraceme = (sysctl('/proc/sys/kernel/yama/ptrace_scope') ?? 0) < 3;
    assert.deepEqual(open, {
      getpid: 0,
      fork: 0,
      io_uring_setup: hostAllowsIoUring ? 0 : open['io_uring_setup'],
      perf_event_open: hostAllowsPerf ? 0 : open['perf_event_open'],
      keyctl: 0,
      clone_newuser: 0,
      unshare: 0,
      ptrace: hostAllowsTraceme ? 0 : open['ptrace'],
      clone3: EINVAL,
      ...(arch === 'x86_64' ? { x32: 0 } : {}),
    });
  });
});
