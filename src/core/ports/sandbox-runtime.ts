import type { Duplex } from 'node:stream';

/** Resource limits of one sandbox. Isolating runtimes enforce each one they have a mechanism for. */
export interface SandboxLimits {
  /** Memory of the whole sandbox (V8 heap, buffers, /tmp contents), in MB. */
  memoryMB: number;
  /** Most processes and threads at once (a fork bomb stops here). */
  pids: number;
  /** Most open file descriptors per process. */
  openFiles: number;
  /** Size of the private /tmp, in MB. */
  tmpMB: number;
  /** CPU time share as a number of cores (a quota, not a pin). */
  cpus: number;
}

/**
 * How a sandbox process is launched. The Agent owns the guest protocol; a runtime starts the process and hands it
 * one end of an already connected channel (see `SandboxProcess.channel`).
 */
export interface SandboxLaunchSpec {
  instanceId: string;
  /**
   * Host directory the function's code is placed in before `init` (it may still be empty at launch: a stem
   * cell is launched before anyone knows which function it will run). Read-only inside isolating runtimes.
   */
  taskDir: string;
  /** Writable scratch directory on the host, for runtimes without a private /tmp of their own. */
  scratchDir: string;
  /** Function runtime name (`nodejs20`, `nodejs24`). */
  runtime: string;
  /** Whether the sandbox may reach the network. */
  network: boolean;
  /** With `network`: IPv4 CIDRs the sandbox may reach although private ranges are denied by default. */
  allowNet?: readonly string[] | undefined;
  limits: SandboxLimits;
  /**
   * Variables the guest's Node must have in its environment as it starts (`startupEnvVariables`: NODE_OPTIONS,
   * NODE_EXTRA_CA_CERTS...), besides the runtime's own; such a sandbox is launched with its code already in place.
   */
  env?: Readonly<Record<string, string>> | undefined;
}

export interface SandboxExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Last bytes the process wrote to stderr outside the protocol (V8 fatal errors, for example). */
  stderrTail: string;
}

/** Limits a sandbox ran into, read from the kernel's counters where the runtime has them. */
export interface LimitHits {
  /** The kernel's OOM killer fired inside the sandbox's memory limit. */
  memory: boolean;
  /** A fork or thread creation was refused at the process limit. */
  pids: boolean;
  /** The private /tmp is full. */
  tmp: boolean;
}

/** The environment variable naming the descriptor the guest inherits its end of the channel on. */
export const channelFdVariable = 'SAVASSAN_CHANNEL_FD';

export interface SandboxProcess {
  readonly pid: number | null;
  /**
   * The Agent's end of the guest protocol: one end of a connected Unix stream socket pair whose other end the guest
   * inherited as the descriptor named by `SAVASSAN_CHANNEL_FD`. No socket file exists and nothing else can connect.
   */
  readonly channel: Duplex;
  /** Resolves once when the process has exited. */
  readonly exited: Promise<SandboxExit>;
  /** Where the guest sees `taskDir`. */
  readonly guestTaskDir: string;
  /** Best-effort resident memory of the sandbox in bytes, or null if unknown. */
  memoryBytes(): Promise<number | null>;
  /** Which limits the sandbox hit so far; all false where the runtime cannot tell. Call before `kill()` resolves. */
  limitHits(): Promise<LimitHits>;
  /** Whether `freeze` stops the sandbox's processes (a cgroup freezer); where false it does nothing. */
  readonly freezable: boolean;
  /** Stop every process of the sandbox until `thaw`: an idle sandbox's leftover timers use no CPU. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** SIGKILL the sandbox (and anything it spawned; frozen or not), wait for exit and release what it held. Idempotent. */
  kill(): Promise<SandboxExit>;
}

/** One isolation mechanism and whether this host enforces it. */
export interface Enforcement {
  mechanism: string;
  enforced: boolean;
  /** Why it is not enforced, or how, for `GET /v1/nodes`. */
  note: string;
}

/** What a runtime enforces on this host, reported at start and by `GET /v1/nodes` instead of running weaker silently. */
export interface RuntimeCapabilities {
  filesystem: Enforcement;
  network: Enforcement;
  /**
   * Functions deployed with `--network` kept off this host's own addresses (the gateway, databases...), loopback,
   * link-local and private ranges, by a network namespace per sandbox; where not enforced, such deploys are refused.
   */
  hostAddresses: Enforcement;
  processes: Enforcement;
  memory: Enforcement;
  pids: Enforcement;
  cpu: Enforcement;
  tmp: Enforcement;
  openFiles: Enforcement;
  /** System calls that widen the kernel surface (namespaces, mounts, keyrings, BPF, io_uring, ptrace) refused. */
  syscalls: Enforcement;
  /** Sandboxes scheduled so that they cannot preempt the platform's own threads when they wake up. */
  scheduling: Enforcement;
  /** Idle sandboxes frozen (cgroup freezer), so code left running after a handler returns uses no CPU. */
  freezing: Enforcement;
}

export interface SandboxRuntime {
  readonly kind: 'process' | 'bwrap' | 'runc';
  /** Whether this runtime isolates code from the host; `process` does not. */
  readonly isolating: boolean;
  readonly capabilities: RuntimeCapabilities;
  launch(spec: SandboxLaunchSpec): Promise<SandboxProcess>;
  /** Release host resources the runtime set up (cgroup parents). Sandboxes must be killed first. */
  close(): Promise<void>;
}
