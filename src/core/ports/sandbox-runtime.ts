/** How a sandbox process is launched. The Agent owns the socket protocol; a runtime only starts the process. */
export interface SandboxLaunchSpec {
  instanceId: string;
  /** Unix socket the guest must connect to (listening, owned by the Agent). */
  socketPath: string;
  /** Extracted function code, mounted read-only where the runtime can. */
  codeDir: string;
  /** Writable scratch directory for the sandbox (its /tmp). */
  scratchDir: string;
  memoryMB: number;
  runtime: string;
}

export interface SandboxExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Last bytes the process wrote to stderr outside the protocol (V8 fatal errors, for example). */
  stderrTail: string;
}

export interface SandboxProcess {
  readonly pid: number | null;
  /** Resolves once when the process has exited. */
  readonly exited: Promise<SandboxExit>;
  /** Best-effort resident memory of the sandbox in bytes, or null if unknown. */
  memoryBytes(): Promise<number | null>;
  /** SIGKILL the sandbox (and anything it spawned) and wait for exit. Idempotent. */
  kill(): Promise<SandboxExit>;
}

export interface SandboxRuntime {
  readonly kind: 'process' | 'bwrap' | 'runc';
  /** Whether this runtime isolates code from the host; `process` does not. */
  readonly isolating: boolean;
  launch(spec: SandboxLaunchSpec): Promise<SandboxProcess>;
}
