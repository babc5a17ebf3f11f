// Fakes that implement ports, for tests about what the Manager and the control plane do with what an Agent reports.
import { randomUUID } from 'node:crypto';
import { MemoryProvisionQueue } from '../../src/adapters/memory/memory-provision-queue.js';
import { PlatformError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { AgentApi, InvokeOutcome, SandboxInfo, SandboxSpec } from '../../src/core/ports/agent-api.js';
import type { ProvisionQueue } from '../../src/core/ports/provision-queue.js';
import type { InstanceRef, ProvisionRequest } from '../../src/core/types.js';

/** An Agent whose sandboxes are plain records the test sets the state of. */
export class FakeAgent implements AgentApi {
  readonly nodeId = 'node-test';
  /** The current incarnation of a function name, for sandboxes the test adds. */
  incarnationOf: (functionName: string) => string = () => '';
  readonly sandboxes = new Map<string, SandboxInfo>();
  readonly destroyed: string[] = [];
  /** What each creation was asked for, in order. */
  readonly specs: SandboxSpec[] = [];

  /** Creations of these functions wait for `release()`. */
  readonly slow = new Set<string>();
  /** Creations of these functions fail. */
  readonly failing = new Set<string>();
  #release: () => void = () => {};
  readonly #gate = new Promise<void>((resolve) => (this.#release = resolve));

  release(): void {
    this.#release();
  }

  async createSandbox(spec: SandboxSpec): Promise<InstanceRef> {
    this.specs.push(spec);
    if (this.slow.has(spec.functionName)) await this.#gate;
    if (this.failing.has(spec.functionName)) {
      throw new PlatformError('FUNCTION_INIT_ERROR', `${spec.functionName} failed to start`);
    }
    const info = this.add(spec.functionName, spec.version, 'idle', 0, spec.incarnation);
    return {
      instanceId: info.instanceId,
      functionName: spec.functionName,
      incarnation: spec.incarnation,
      version: spec.version,
      nodeId: this.nodeId,
      createdAt: info.createdAt,
      initMs: 5,
      invocations: 0,
      idleSince: info.createdAt,
    };
  }

  invoke(): Promise<InvokeOutcome> {
    return Promise.reject(new Error('the Manager never invokes'));
  }

  destroySandbox(instanceId: string): Promise<void> {
    this.sandboxes.delete(instanceId);
    this.destroyed.push(instanceId);
    return Promise.resolve();
  }

  listSandboxes(): Promise<SandboxInfo[]> {
    return Promise.resolve([...this.sandboxes.values()].map((info) => ({ ...info })));
  }

  /** A pool entry for one of its sandboxes. */
  ref(info: SandboxInfo): InstanceRef {
    return {
      instanceId: info.instanceId,
      functionName: info.functionName,
      incarnation: info.incarnation,
      version: info.version,
      nodeId: this.nodeId,
      createdAt: info.createdAt,
      initMs: 1,
      invocations: info.invocations,
      idleSince: 0,
    };
  }

  add(
    functionName: string,
    version: number,
    state: SandboxInfo['state'],
    invocations: number,
    incarnation = this.incarnationOf(functionName),
  ): SandboxInfo {
    const info: SandboxInfo = {
      instanceId: randomUUID(),
      functionName,
      incarnation,
      version,
      pid: null,
      state,
      createdAt: Date.now(),
      invocations,
    };
    this.sandboxes.set(info.instanceId, info);
    return info;
  }
}

/** A queue that fails while `down`, as a Redis queue does during an outage. */
export class FlakyQueue implements ProvisionQueue {
  down = false;
  pops = 0;
  readonly #queue = new MemoryProvisionQueue({ capacity: 10 });
  readonly capacity = 10;

  push(request: ProvisionRequest): Promise<boolean> {
    return this.#queue.push(request);
  }

  async pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    this.pops++;
    if (this.down) throw new PlatformError('UNAVAILABLE', 'Redis at redis://test is unavailable (pop): down');
    return this.#queue.pop(Math.min(timeoutMs, 50), signal);
  }

  size(): Promise<number> {
    return this.#queue.size();
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}

/** Records what is logged, by level. */
export function recordingLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at =
    (level: string) =>
    (_obj: object, msg = ''): void => {
      lines.push({ level, msg });
    };
  const logger = {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}
