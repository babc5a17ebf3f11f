// The seccomp program, run by a small classic-BPF interpreter over `seccomp_data` the way the kernel runs it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bpf,
  cloneNewUser,
  deniedSyscalls,
  enosysSyscalls,
  seccompArches,
  seccompData,
  seccompFilter,
  seccompProgram,
  seccompRet,
  type SockFilter,
} from './seccomp.js';

interface Call {
  nr: number;
  arch: number;
  arg0?: bigint;
}

/** The `struct seccomp_data` the kernel hands the filter, little-endian. */
function seccompDataOf(call: Call): Buffer {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(call.nr >>> 0, 0);
  data.writeUInt32LE(call.arch, 4);
  data.writeBigUInt64LE(call.arg0 ?? 0n, 16);
  return data;
}

/** Runs a program over one call; refuses instructions the generator should not emit and jumps out of range. */
function run(program: SockFilter[], call: Call): number {
  const data = seccompDataOf(call);
  let accumulator = 0;
  for (let pc = 0; ;) {
    const insn = program[pc];
    assert.ok(insn !== undefined, `pc ${pc} is past the end of the program`);
    switch (insn.code) {
      case bpf.ldAbsW:
        assert.ok(insn.k % 4 === 0 && insn.k + 4 <= 64, `load at ${insn.k}`);
        accumulator = data.readUInt32LE(insn.k);
        pc += 1;
        break;
      case bpf.jeqK:
        pc += 1 + (accumulator === insn.k >>> 0 ? insn.jt : insn.jf);
        break;
      case bpf.jgeK:
        pc += 1 + (accumulator >= insn.k >>> 0 ? insn.jt : insn.jf);
        break;
      case bpf.jsetK:
        pc += 1 + ((accumulator & insn.k) !== 0 ? insn.jt : insn.jf);
        break;
      case bpf.retK:
        return insn.k >>> 0;
      default:
        assert.fail(`unexpected instruction code 0x${insn.code.toString(16)}`);
    }
  }
}

const errno = (value: number) => (seccompRet.errno | value) >>> 0;
const EPERM = errno(1);
const ENOSYS = errno(38);
/** The flags glibc's fork and pthread_create pass to clone. */
const forkFlags = 0x01200011n;
const threadFlags = 0x003d0f00n;

for (const arch of ['x86_64', 'aarch64'] as const) {
  describe(`the ${arch} seccomp program`, () => {
    const program = seccompProgram(arch);
    const { auditArch, numbers } = seccompArches[arch];
    const call = (nr: number, arg0?: bigint) => run(program, { nr, arch: auditArch, arg0 });

    it('loads the architecture first and kills the process on any other', () => {
      assert.deepEqual(program[0], { code: bpf.ldAbsW, jt: 0, jf: 0, k: seccompData.arch });
      assert.deepEqual(program[1], { code: bpf.jeqK, jt: 1, jf: 0, k: auditArch });
      assert.deepEqual(program[2], { code: bpf.retK, jt: 0, jf: 0, k: seccompRet.killProcess });
      const others = [0x40000003 /* i386 */, 0xc00000b7, 0xc000003e, 0x40000028 /* arm */, 0].filter(
        (other) => other !== auditArch,
      );
      for (const other of others) {
        for (const nr of [0, 1, numbers.clone, numbers.unshare]) {
          assert.equal(run(program, { nr, arch: other }), seccompRet.killProcess, `arch 0x${other.toString(16)}`);
        }
      }
    });

    it('refuses each denied syscall with EPERM, and clone3 with ENOSYS', () => {
      for (const name of deniedSyscalls) assert.equal(call(numbers[name]), EPERM, name);
      for (const name of enosysSyscalls) assert.equal(call(numbers[name]), ENOSYS, name);
    });

    it('refuses clone with CLONE_NEWUSER and allows fork and threads', () => {
      assert.equal(call(numbers.clone, BigInt(cloneNewUser) | forkFlags), EPERM);
      assert.equal(call(numbers.clone, BigInt(cloneNewUser)), EPERM);
      assert.equal(call(numbers.clone, forkFlags), seccompRet.allow);
      assert.equal(call(numbers.clone, threadFlags), seccompRet.allow);
    });

    it('allows every other syscall number, and ends with ALLOW', () => {
      const denied = new Set<number>([...deniedSyscalls, ...enosysSyscalls].map((name) => numbers[name]));
      for (let nr = 0; nr < 1024; nr++) {
        if (denied.has(nr)) continue;
        assert.equal(call(nr), seccompRet.allow, `syscall ${nr}`);
      }
      assert.deepEqual(program.at(-1), { code: bpf.retK, jt: 0, jf: 0, k: seccompRet.allow });
      assert.ok(program.length <= 4096, 'within BPF_MAXINSNS');
    });
  });
}

describe('the x32 ABI', () => {
  const program = seccompProgram('x86_64');
  const x86_64 = seccompArches.x86_64.auditArch;

  it('is checked right after the architecture, before any syscall number', () => {
    assert.deepEqual(program[3], { code: bpf.ldAbsW, jt: 0, jf: 0, k: seccompData.nr });
    assert.equal(program[4]?.code, bpf.jgeK);
    assert.equal(program[4]?.k, 0x40000000);
  });

  it('kills the process on an x32 syscall (its AUDIT_ARCH is x86_64 too)', () => {
    for (const nr of [0x40000000, 0x40000000 | 39, 0x40000000 | 272, 0x40000000 | 512, 0x7fffffff]) {
      assert.equal(run(program, { nr, arch: x86_64 }), seccompRet.killProcess, `nr 0x${nr.toString(16)}`);
    }
  });

  it('lets syscall -1 through (the kernel answers ENOSYS; a tracer uses it to skip a call)', () => {
    assert.equal(run(program, { nr: -1, arch: x86_64 }), seccompRet.allow);
  });

  it('is not checked on aarch64, which has no such ABI', () => {
    const aarch64 = seccompProgram('aarch64');
    assert.ok(!aarch64.some((insn) => insn.code === bpf.jgeK));
  });
});

describe('seccompFilter', () => {
  it('encodes struct sock_filter: u16 code, u8 jt, u8 jf, u32 k, little-endian', () => {
    for (const [nodeArch, arch] of [
      ['x64', 'x86_64'],
      ['arm64', 'aarch64'],
    ] as const) {
      const bytes = seccompFilter(nodeArch);
      const program = seccompProgram(arch);
      assert.equal(bytes.length, program.length * 8);
      program.forEach((insn, i) => {
        assert.deepEqual(
          {
            code: bytes.readUInt16LE(i * 8),
            jt: bytes[i * 8 + 2],
            jf: bytes[i * 8 + 3],
            k: bytes.readUInt32LE(i * 8 + 4),
          },
          { ...insn, k: insn.k >>> 0 },
        );
      });
    }
    // ld [4]: the architecture.
    assert.deepEqual([...seccompFilter('x64').subarray(0, 8)], [0x20, 0, 0, 0, 4, 0, 0, 0]);
  });

  it('refuses an architecture it has no syscall table for', () => {
    for (const arch of ['ia32', 'arm', 's390x', 'riscv64', 'ppc64', 'loong64']) {
      assert.throws(
        () => seccompFilter(arch),
        new RegExp(`UNAVAILABLE.*no seccomp filter for the ${arch} architecture \\(only x64 and arm64\\)`),
      );
    }
  });

  it(
    'builds for the architecture this process runs on by default',
    { skip: !['x64', 'arm64'].includes(process.arch) },
    () => {
      assert.deepEqual(seccompFilter(), seccompFilter(process.arch));
    },
  );
});
