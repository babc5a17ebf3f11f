import { PlatformError } from '../core/errors.js';

/**
 * Syscalls a function has no use for and that widen the kernel surface an escape would use: new namespaces and
 * mounts, keyrings, BPF, perf, userfaultfd, io_uring, module and kexec loading, ptrace. They answer EPERM. Both
 * runtimes' filters are built from this list: runc's profile (`runc-runtime.ts`) and bwrap's BPF program (below).
 */
export const deniedSyscalls = [
  'unshare',
  'setns',
  'mount',
  'umount2',
  'pivot_root',
  'keyctl',
  'add_key',
  'request_key',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'open_by_handle_at',
  'reboot',
  'swapon',
  'swapoff',
] as const;

/** `clone3` answers ENOSYS so the C library falls back to `clone`, whose flags a filter can see (clone3's are in memory). */
export const enosysSyscalls = ['clone3'] as const;

/** CLONE_NEWUSER: `clone` with it answers EPERM (a user namespace gives capabilities over new namespaces). */
export const cloneNewUser = 0x10000000;

export const EPERM = 1;
export const ENOSYS = 38;

type SyscallName = (typeof deniedSyscalls)[number] | (typeof enosysSyscalls)[number] | 'clone';

interface SeccompArch {
  /** `AUDIT_ARCH_*`: what the kernel puts in `seccomp_data.arch` for a syscall of this ABI. */
  auditArch: number;
  /** Syscall numbers of this ABI (every name above: the type says so, so a new name needs a number everywhere). */
  numbers: Record<SyscallName, number>;
  /** x86_64 only: the x32 ABI shares AUDIT_ARCH_X86_64 and sets this bit in the syscall number. */
  x32Bit?: number;
}

/** Syscall tables (Linux `arch/x86/entry/syscalls/syscall_64.tbl`, `include/uapi/asm-generic/unistd.h`). */
export const seccompArches: Readonly<Record<'x86_64' | 'aarch64', SeccompArch>> = {
  x86_64: {
    auditArch: 0xc000003e, // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    x32Bit: 0x40000000,
    numbers: {
      unshare: 272,
      setns: 308,
      mount: 165,
      umount2: 166,
      pivot_root: 155,
      keyctl: 250,
      add_key: 248,
      request_key: 249,
      bpf: 321,
      perf_event_open: 298,
      userfaultfd: 323,
      io_uring_setup: 425,
      io_uring_enter: 426,
      io_uring_register: 427,
      ptrace: 101,
      process_vm_readv: 310,
      process_vm_writev: 311,
      kexec_load: 246,
      kexec_file_load: 320,
      init_module: 175,
      finit_module: 313,
      delete_module: 176,
      open_by_handle_at: 304,
      reboot: 169,
      swapon: 167,
      swapoff: 168,
      clone: 56,
      clone3: 435,
    },
  },
  aarch64: {
    auditArch: 0xc00000b7, // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    numbers: {
      unshare: 97,
      setns: 268,
      mount: 40,
      umount2: 39,
      pivot_root: 41,
      keyctl: 219,
      add_key: 217,
      request_key: 218,
      bpf: 280,
      perf_event_open: 241,
      userfaultfd: 282,
      io_uring_setup: 425,
      io_uring_enter: 426,
      io_uring_register: 427,
      ptrace: 117,
      process_vm_readv: 270,
      process_vm_writev: 271,
      kexec_load: 104,
      kexec_file_load: 294,
      init_module: 105,
      finit_module: 273,
      delete_module: 106,
      open_by_handle_at: 265,
      reboot: 142,
      swapon: 224,
      swapoff: 225,
      clone: 220,
      clone3: 435,
    },
  },
};

/** Node's `process.arch` names of the architectures above. */
const archOfNode: Readonly<Record<string, keyof typeof seccompArches>> = { x64: 'x86_64', arm64: 'aarch64' };

// Classic BPF (linux/filter.h, linux/seccomp.h).
export const bpf = {
  ldAbsW: 0x20, // BPF_LD | BPF_W | BPF_ABS
  jeqK: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  jgeK: 0x35, // BPF_JMP | BPF_JGE | BPF_K
  jsetK: 0x45, // BPF_JMP | BPF_JSET | BPF_K
  retK: 0x06, // BPF_RET | BPF_K
} as const;

export const seccompRet = {
  killProcess: 0x80000000,
  errno: 0x00050000,
  allow: 0x7fff0000,
} as const;

/** Offsets in `struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }`. */
export const seccompData = { nr: 0, arch: 4, arg0Low: 16 } as const;

export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const stmt = (code: number, k: number): SockFilter => ({ code, jt: 0, jf: 0, k });
const jump = (code: number, k: number, jt: number, jf: number): SockFilter => ({ code, jt, jf, k });

/**
 * The seccomp program for one architecture, as instructions: syscalls of any other ABI kill the process (their
 * numbers mean other calls), so do x32 syscalls on x86_64; then each denied syscall answers its errno, `clone`
 * with CLONE_NEWUSER answers EPERM, and everything else is allowed.
 */
export function seccompProgram(arch: keyof typeof seccompArches): SockFilter[] {
  const { auditArch, numbers, x32Bit } = seccompArches[arch];
  const kill = stmt(bpf.retK, seccompRet.killProcess);
  const program: SockFilter[] = [
    stmt(bpf.ldAbsW, seccompData.arch),
    jump(bpf.jeqK, auditArch, 1, 0),
    kill,
    stmt(bpf.ldAbsW, seccompData.nr),
  ];
  if (x32Bit !== undefined) {
    // nr >= 0x40000000 is x32 (or no syscall at all); -1 is what a tracer writes to skip a call: let it through.
    program.push(jump(bpf.jgeK, x32Bit, 0, 2), jump(bpf.jeqK, 0xffffffff, 1, 0), kill);
  }
  const denied: [SyscallName, number][] = [
    ...deniedSyscalls.map((name): [SyscallName, number] => [name, EPERM]),
    ...enosysSyscalls.map((name): [SyscallName, number] => [name, ENOSYS]),
  ];
  for (const [name, errno] of denied) {
    program.push(jump(bpf.jeqK, numbers[name], 0, 1), stmt(bpf.retK, seccompRet.errno | errno));
  }
  // Last, since it replaces the syscall number in the accumulator with the flags.
  program.push(
    jump(bpf.jeqK, numbers.clone, 0, 3),
    stmt(bpf.ldAbsW, seccompData.arg0Low),
    jump(bpf.jsetK, cloneNewUser, 0, 1),
    stmt(bpf.retK, seccompRet.errno | EPERM),
    stmt(bpf.retK, seccompRet.allow),
  );
  return program;
}

/** The seccomp architecture of a Node `process.arch`; refuses one without a syscall table here. */
export function seccompArchOf(nodeArch: string): keyof typeof seccompArches {
  const arch = archOfNode[nodeArch];
  if (arch === undefined) {
    throw new PlatformError(
      'UNAVAILABLE',
      `no seccomp filter for the ${nodeArch} architecture (only x64 and arm64): the bwrap sandbox cannot run here`,
    );
  }
  return arch;
}

/**
 * The filter `bwrap --seccomp FD` reads: the raw `struct sock_filter` array (u16 code, u8 jt, u8 jf, u32 k; both
 * supported architectures are little-endian), for the architecture this process runs on.
 */
export function seccompFilter(nodeArch: string = process.arch): Buffer {
  const program = seccompProgram(seccompArchOf(nodeArch));
  const bytes = Buffer.alloc(program.length * 8);
  program.forEach((instruction, i) => {
    bytes.writeUInt16LE(instruction.code, i * 8);
    bytes.writeUInt8(instruction.jt, i * 8 + 2);
    bytes.writeUInt8(instruction.jf, i * 8 + 3);
    bytes.writeUInt32LE(instruction.k, i * 8 + 4);
  });
  return bytes;
}

/** What the filter refuses, for a runtime's `capabilities.syscalls`. */
export const seccompNote =
  'namespaces, mounts, keyrings, BPF, perf, userfaultfd, io_uring, ptrace, kexec and modules refused';
