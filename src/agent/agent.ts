import { createHash, randomUUID } from 'node:crypto';
import { renameSync } from 'node:fs';
import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { join, resolve } from 'node:path';
import { PlatformError, isPlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type {
  AgentApi,
  InvokeOutcome,
  InvokeRequest,
  SandboxInfo,
  SandboxLogLine,
  SandboxSpec,
} from '../core/ports/agent-api.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import { compileFunctionConfig, maxEventBytes, startupEnv, type FunctionConfig } from '../core/function-config.js';
import type {
  Enforcement,
  LimitHits,
  SandboxExit,
  SandboxLimits,
  SandboxProcess,
  SandboxRuntime,
} from '../core/ports/sandbox-runtime.js';
import { blobKeys, type InstanceRef, type SerializedError } from '../core/types.js';
import { exists, extractBundle, placeCode } from '../sandbox/code-bundle.js';
import {
  FrameDecoder,
  writeMessage,
  guestFrameLimits,
  parseGuestMessage,
  type ErrorMessage,
  type GuestMessage,
  type HostMessage,
} from '../sandbox/protocol.js';
import { LogBuffer } from './log-buffer.js';
import type { NodeBudget } from './node-budget.js';
import { StemCells, defaultStemCellOptions, type StemCellOptions, type StemCellStats } from './stem-cells.js';
import { defaultFreezeIdleMs } from '../core/node-defaults.js';
import type { Tracer } from '../core/ports/tracer.js';
import { noopTracer } from '../core/ports/tracer.js';

export interface AgentOptions {
  nodeId: string;
  runtime: SandboxRuntime;
  blobStore: BlobStore;
  /** Where code is extracted (`code/{sha}`) and sandboxes live (`sandboxes/{id}`); 0700, leftovers removed at start. */
  workDir: string;
  logger?: Logger | undefined;
  /** Largest stored log per invocation; the rest is dropped with a marker line. Default 1 MiB. */
  logCapBytes?: number | undefined;
  /** How long a sandbox may take to connect after launch, and then to run `init`. Default 10 s each. */
  initTimeoutMs?: number | undefined;
  /** Limits every sandbox gets besides its function's memory. */
  limits?: Partial<Omit<SandboxLimits, 'memoryMB'>> | undefined;
  /** Most function sandboxes (serving or being created) at once; further creations are refused. Default: no limit. */
  capacity?: number | undefined;
  /**
   * What all sandboxes (stem cells included) may hold together: the sum of their memory limits and of their pids
   * limits (`compileNodeBudget`). A creation past either is refused with TOO_MANY_REQUESTS. Default: no budget.
   */
  budget?: NodeBudget | undefined;
  /**
   * Freeze a sandbox (cgroup freezer) once it has been idle this long, and thaw it when it is next used, so code left
   * running after a handler returns uses no CPU; 0 freezes right after each invocation, false never. Only where the
   * runtime can freeze. Default `defaultFreezeIdleMs`.
   */
  freezeIdleMs?: number | false | undefined;
  /** Pre-started generic sandboxes for fast cold starts; off unless given. */
  stemCells?: Partial<StemCellOptions> | false | undefined;
  /** Spans of invocations and sandbox creations whose requests carry a `traceparent` (default: off). */
  tracer?: Tracer | undefined;
}

export const defaultSandboxLimits: Omit<SandboxLimits, 'memoryMB'> = {
  pids: 128,
  openFiles: 1024,
  tmpMB: 64,
  cpus: 1,
};

export { defaultFreezeIdleMs };

/** Stem cells as a node runs them by default: the kind of the default function settings kept ready. */
export function defaultStemCells(enabled: boolean): Partial<StemCellOptions> | false {
  return enabled ? { baseKinds: [sandboxKind(compileFunctionConfig({}))] } : false;
}

/**
 * The settings a generic sandbox is started with: sandboxes of one kind are interchangeable before `init`. The
 * CIDRs a networked function may reach are fixed at launch (its namespace's firewall) and so part of the kind.
 */
export function sandboxKind(config: Pick<FunctionConfig, 'runtime' | 'memoryMB' | 'network' | 'allowNet'>): string {
  const allow = config.network && config.allowNet.length > 0 ? ` allow=${config.allowNet.join(',')}` : '';
  return `${config.runtime}/${config.memoryMB}MB/${config.network ? 'net' : 'nonet'}${allow}`;
}

/**
 * Whether a function's sandboxes may be stem cells: not when its env holds variables Node reads only as it starts
 * (`startupEnv`), which a stem cell, started before anyone knew its function, did not have.
 */
function usesStemCells(spec: SandboxSpec): boolean {
  return Object.keys(startupEnv(spec.config)).length === 0;
}

function parseKind(kind: string): Pick<FunctionConfig, 'runtime' | 'memoryMB' | 'network' | 'allowNet'> {
  const [base = '', allow = ''] = kind.split(' allow=');
  const [runtime = '', memory = '', network = ''] = base.split('/');
  const allowNet = allow === '' ? [] : allow.split(',');
  return { runtime, memoryMB: Number.parseInt(memory, 10), network: network === 'net', allowNet };
}

/** After a sandbox process exits, how long to wait for the rest of its channel's data (an error sent just before). */
const socketDrainMs = 250;
/**
 * How long a sandbox whose guest closed its channel has to exit on its own before the Agent kills it. A guest's
 * channel closes as it exits, a moment before its exit status reaches the Agent (later still through a monitor such
 * as bwrap's): killing it at once would replace the status it exits with by the Agent's SIGKILL.
 */
export const hangUpGraceMs = 2000;
const stderrInMessage = 2000;
/** Messages out of turn a sandbox may send before it is killed as broken. */
const maxUnexpectedMessages = 100;

type SandboxState = 'starting' | 'stem' | 'idle' | 'busy' | 'stopping';

type SandboxEvent =
  { kind: 'message'; message: GuestMessage } | { kind: 'exit'; exit: SandboxExit } | { kind: 'timeout' };

interface ActiveInvocation {
  requestId: string;
  invocationId: string;
  log: LogBuffer;
}

/** The Agent's record of one sandbox: its process, its channel and what it is doing. */
interface Sandbox {
  readonly instanceId: string;
  /** The kind it was started as (`sandboxKind`). */
  readonly kind: string;
  /** The function it runs; null while it is a generic stem cell. */
  spec: SandboxSpec | null;
  readonly dir: string;
  /** Where the code is placed before init (read-only inside isolating runtimes). */
  readonly taskDir: string;
  readonly createdAt: number;
  state: SandboxState;
  initMs: number;
  invocations: number;
  idleSince: number;
  /** Whether it was a stem cell when its function claimed it. */
  fromStemCell: boolean;
  launching: Promise<SandboxProcess> | null;
  proc: SandboxProcess | null;
  /** The Agent's end of the channel the guest inherited (from `proc.channel`, once launched). */
  socket: Duplex | null;
  /** Resolves when the guest's channel closes. */
  socketClosed: Promise<void>;
  markSocketClosed: () => void;
  exit: SandboxExit | null;
  /** Why the Agent hung up on the guest, when it broke the protocol. */
  protocolError: string | null;
  /** The guest closed its channel and did not exit within `hangUpGraceMs`, so the Agent killed it. */
  killedAfterHangUp: boolean;
  /** The phase waiting on this sandbox (creation or an invocation); gets messages, the exit and timeouts. */
  listener: ((event: SandboxEvent) => void) | null;
  active: ActiveInvocation | null;
  /** Output outside an invocation (init, or after a result); it goes with the next invocation's log. */
  pendingLog: LogBuffer;
  lastMaxRssBytes: number | null;
  destroying: Promise<void> | null;
  unexpectedMessages: number;
  /** Memory (MB) it holds of the node's budget, from its admission until it is torn down; 0 once released. */
  chargedMB: number;
  /** The freeze of an idle sandbox (settled once its processes are stopped); null while it runs. */
  frozen: Promise<void> | null;
  /**
   * Set on a stem cell a function took: starts the cell's replacement, once its first invocation has answered or
   * `StemCellOptions.replaceAfterMs` passed (see `StemCells.take`).
   */
  replaceStemCell: (() => void) | null;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/**
 * An invocation's outcome, every one built with the same fields in the same order (its log key set afterwards).
 * Written out rather than spread from a shared base: V8 copies an object spread whose source holds a fractional
 * number (the duration) through its slow path, which built new hidden classes on every call; that cost ~7 µs of a
 * warm invocation at concurrency 1.
 */
function invokeOutcome(
  status: InvokeOutcome['status'],
  durationMs: number,
  peakMemoryBytes: number | null,
  reusable: boolean,
  result: { payloadJson?: Uint8Array; error?: SerializedError },
): InvokeOutcome {
  return {
    status,
    payloadJson: result.payloadJson,
    error: result.error,
    durationMs,
    peakMemoryBytes,
    logKey: null,
    reusable,
  };
}

/** How a sandbox's process ended, as the end of a sentence whose subject is the process. */
function describeExit(sandbox: Sandbox, exit: SandboxExit): string {
  if (sandbox.killedAfterHangUp && exit.signal === 'SIGKILL') {
    return `closed its channel to the agent, did not exit within ${hangUpGraceMs} ms and was killed by the agent`;
  }
  return exit.signal !== null ? `was killed by signal ${exit.signal}` : `exited with code ${exit.code ?? 'unknown'}`;
}

function outOfMemoryMessage(memoryMB: number): string {
  return `out of memory: the function exceeded its memory limit of ${memoryMB} MB`;
}

/** What limits a failed sandbox ran into, as a sentence to add to its error. */
function limitSuffix(hits: LimitHits, limits: Omit<SandboxLimits, 'memoryMB'>, errorCode?: string): string {
  const reasons: string[] = [];
  if (hits.pids) reasons.push(`it reached its limit of ${limits.pids} processes and threads`);
  if (hits.tmp) reasons.push(`its /tmp (${limits.tmpMB} MB) is full`);
  if (errorCode === 'EMFILE') reasons.push(`it reached its limit of ${limits.openFiles} open files`);
  return reasons.length === 0 ? '' : ` (${reasons.join('; ')})`;
}

/**
 * Whether V8 ran out of heap: it says so on stderr before it aborts. An abort alone (`process.abort()`, a native
 * addon's assertion) is a crash; a cgroup's out-of-memory kill is told by its counters (`LimitHits.memory`).
 */
function isOutOfMemory(exit: SandboxExit): boolean {
  return /heap out of memory|Allocation failed/i.test(exit.stderrTail);
}

/** The useful end of a sandbox's stderr: for V8's out-of-memory report its FATAL ERROR line, else at most ~2 KB. */
function stderrExcerpt(exit: SandboxExit): string {
  const lines = exit.stderrTail.split('\n').filter((line) => line.trim() !== '');
  const fatal = lines.find((line) => line.startsWith('FATAL ERROR:'));
  if (fatal !== undefined && isOutOfMemory(exit)) return fatal;
  const text = lines.join('\n');
  return text.length > stderrInMessage ? `...${text.slice(-stderrInMessage)}` : text;
}

function stderrSuffix(exit: SandboxExit): string {
  const excerpt = stderrExcerpt(exit);
  return excerpt === '' ? '' : `; stderr: ${excerpt}`;
}

/**
 * The Agent of one node: creates sandboxes through a SandboxRuntime, speaks the guest protocol with each over the
 * connected channel its runtime made (a socket pair: no socket file, exactly one peer), runs one invocation at a
 * time per sandbox, enforces the function timeout, and stores each invocation's log in the blob store itself.
 */
export class Agent implements AgentApi {
  readonly nodeId: string;
  private readonly runtime: SandboxRuntime;
  private readonly blobStore: BlobStore;
  private readonly codeRoot: string;
  private readonly sandboxRoot: string;
  private readonly logger: Logger;
  private readonly tracer: Tracer;
  private readonly logCapBytes: number;
  private readonly initTimeoutMs: number;
  private readonly limits: Omit<SandboxLimits, 'memoryMB'>;
  private readonly capacity: number | undefined;
  private readonly budget: NodeBudget | undefined;
  /** Sandboxes (stem cells included) and their memory, charged against the budget. */
  private readonly charged = { sandboxes: 0, memoryMB: 0 };
  private readonly freezeIdleMs: number | false;
  private readonly freezeTimer: NodeJS.Timeout | null = null;
  private readonly stemCells: StemCells<Sandbox> | null;
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly extractions = new Map<string, Promise<string>>();
  /** Creations in progress per code bundle (sha256): their extracted code must stay. */
  private readonly codeUsers = new Map<string, number>();
  private readonly creations = new Set<Promise<unknown>>();
  /** Stem cells being discarded to make room: new sandboxes launch once they are gone. */
  private readonly evictions = new Set<Promise<void>>();
  private readonly uploads = new Set<Promise<unknown>>();
  private readonly logListeners = new Set<(line: SandboxLogLine) => void>();
  private closing: Promise<void> | null = null;
  private started: Promise<void> | null = null;

  constructor(options: AgentOptions) {
    this.nodeId = options.nodeId;
    this.runtime = options.runtime;
    this.blobStore = options.blobStore;
    const workDir = resolve(options.workDir);
    this.codeRoot = join(workDir, 'code');
    this.sandboxRoot = join(workDir, 'sandboxes');
    this.logger = (options.logger ?? silentLogger).child({ component: 'agent', nodeId: options.nodeId });
    this.tracer = options.tracer ?? noopTracer;
    this.logCapBytes = options.logCapBytes ?? 1024 * 1024;
    this.initTimeoutMs = options.initTimeoutMs ?? 10_000;
    this.limits = { ...defaultSandboxLimits, ...options.limits };
    this.capacity = options.capacity;
    this.budget = options.budget;
    const freezeIdleMs = options.freezeIdleMs ?? defaultFreezeIdleMs;
    this.freezeIdleMs = this.runtime.capabilities.freezing.enforced ? freezeIdleMs : false;
    if (this.freezeIdleMs !== false && this.freezeIdleMs > 0) {
      this.freezeTimer = setInterval(() => this.freezeIdle(), Math.max(50, Math.round(this.freezeIdleMs / 4)));
      this.freezeTimer.unref();
    }
    this.stemCells =
      options.stemCells === false || options.stemCells === undefined
        ? null
        : new StemCells<Sandbox>(
            { ...defaultStemCellOptions, ...options.stemCells },
            (kind) => this.prepare(kind),
            (cell) => this.destroySandbox(cell.instanceId),
            this.logger,
          );
  }

  /** Code bundles (sha256) extracted on this node: placement prefers nodes that hold a function's code. */
  async cachedCode(): Promise<string[]> {
    const entries = await readdir(this.codeRoot).catch(() => [] as string[]);
    return entries.filter((entry) => /^[0-9a-f]{64}$/.test(entry)).sort();
  }

  /** Stem cells ready or starting, per kind. */
  stemCellStats(): StemCellStats {
    return this.stemCells?.stats() ?? { idle: 0, starting: 0, byKind: {} };
  }

  /** Resident memory of each idle stem cell, in bytes (null where unknown). */
  stemCellMemory(): Promise<(number | null)[]> {
    return Promise.all(
      (this.stemCells?.cells() ?? []).map((cell) => cell.proc?.memoryBytes() ?? Promise.resolve(null)),
    );
  }

  createSandbox(spec: SandboxSpec): Promise<InstanceRef> {
    if (this.closing !== null) return Promise.reject(this.closedError());
    if (this.capacity !== undefined) {
      const ready = [...this.sandboxes.values()].filter((s) => s.state === 'idle' || s.state === 'busy').length;
      if (ready + this.creations.size >= this.capacity) {
        return Promise.reject(
          new PlatformError(
            'TOO_MANY_REQUESTS',
            `node ${this.nodeId} is at its capacity of ${this.capacity} sandboxes`,
            {
              details: { retryAfterSeconds: 1 },
            },
          ),
        );
      }
    }
    // Charged now, before any await, so that concurrent creations see each other; unless a stem cell of the kind is
    // ready, which holds its own charge (if another creation takes it first, the launch is charged then).
    let chargedMB = 0;
    if (!(usesStemCells(spec) && (this.stemCells?.hasIdle(sandboxKind(spec.config)) ?? false))) {
      const refused = this.charge(spec.config.memoryMB, true);
      if (refused !== null) return Promise.reject(refused);
      chargedMB = spec.config.memoryMB;
    }
    this.codeUsers.set(spec.codeSha256, (this.codeUsers.get(spec.codeSha256) ?? 0) + 1);
    const span =
      spec.traceparent === undefined || !this.tracer.enabled
        ? null
        : this.tracer.startSpan('sandbox init', {
            kind: 'server',
            parent: spec.traceparent,
            attributes: {
              'faas.name': spec.functionName,
              'faas.version': String(spec.version),
              'savassan.node.id': this.nodeId,
            },
          });
    // A creation that fails has cleaned up after itself when it rejects (a rejected deploy leaves nothing).
    const creation = this.create(spec, chargedMB).then(
      (ref) => {
        span?.setAttribute('savassan.instance.id', ref.instanceId);
        span?.end();
        void this.releaseCode(spec.codeSha256, null);
        return ref;
      },
      async (err: unknown) => {
        span?.fail(PlatformError.from(err).code);
        span?.end();
        await this.releaseCode(spec.codeSha256, err);
        throw err;
      },
    );
    this.creations.add(creation);
    const forget = (): void => {
      this.creations.delete(creation);
    };
    creation.then(forget, forget);
    return creation;
  }

  /**
   * A creation of `sha256` ended. When the code failed to load (a rejected deploy's trial: syntax error, missing
   * handler) and nothing else on this node uses it, its extracted copy goes: a 250 KB zip can extract to 250 MB.
   * Checked and moved aside synchronously, so no creation can start using the directory in between.
   */
  private async releaseCode(sha256: string, err: unknown): Promise<void> {
    const users = (this.codeUsers.get(sha256) ?? 1) - 1;
    if (users > 0) {
      this.codeUsers.set(sha256, users);
      return;
    }
    this.codeUsers.delete(sha256);
    if (!isPlatformError(err, 'FUNCTION_INIT_ERROR') && !isPlatformError(err, 'INVALID_BUNDLE')) return;
    if (this.extractions.has(sha256)) return;
    for (const sandbox of this.sandboxes.values()) {
      if (sandbox.spec?.codeSha256 === sha256 && sandbox.state !== 'stopping') return;
    }
    const dir = join(this.codeRoot, sha256);
    const trash = join(this.codeRoot, `.drop-${randomUUID()}`);
    try {
      renameSync(dir, trash);
    } catch {
      return; // never extracted (a bad zip), or already gone
    }
    await rm(trash, { recursive: true, force: true }).catch((error: unknown) =>
      this.logger.warn({ err: error, sha256 }, 'cannot remove the code of a bundle that failed to load'),
    );
  }

  async invoke(instanceId: string, request: InvokeRequest): Promise<InvokeOutcome> {
    const sandbox = this.sandboxes.get(instanceId);
    const socket = sandbox?.socket;
    if (
      this.closing !== null ||
      sandbox === undefined ||
      sandbox.spec === null ||
      sandbox.state === 'stopping' ||
      sandbox.exit !== null ||
      socket === null ||
      socket === undefined ||
      socket.destroyed
    ) {
      // Nothing was sent to the sandbox: the caller may retry the invocation on another instance.
      throw new PlatformError('UNAVAILABLE', `sandbox ${instanceId} is gone`, { details: { notDelivered: true } });
    }
    if (sandbox.state !== 'idle') {
      // The pool handed out an instance that is in use (a leader that crashed before its followers had its last
      // checkout): nothing is sent, so the caller takes another instance.
      const doing = sandbox.active === null ? 'still starting' : `running invocation ${sandbox.active.invocationId}`;
      throw new PlatformError(
        'UNAVAILABLE',
        `sandbox ${instanceId} is ${doing}: a sandbox serves one invocation at a time`,
        { details: { notDelivered: true, busy: true } },
      );
    }
    if (request.invocationId === '' || !(request.timeoutMs > 0)) {
      throw new PlatformError('INTERNAL', `invalid invoke request for sandbox ${instanceId}`);
    }
    if (request.eventJson.byteLength > maxEventBytes) {
      throw new PlatformError('PAYLOAD_TOO_LARGE', `the event is over the ${maxEventBytes}-byte limit`);
    }

    const { spec } = sandbox;
    const span =
      request.traceparent === undefined || !this.tracer.enabled
        ? null
        : this.tracer.startSpan(`invoke ${spec.functionName}`, {
            kind: 'server',
            parent: request.traceparent,
            attributes: {
              'faas.name': spec.functionName,
              'faas.version': String(spec.version),
              'faas.invocation_id': request.invocationId,
              'faas.instance': instanceId,
              'savassan.node.id': this.nodeId,
            },
          });
    sandbox.state = 'busy';
    // Before the clock starts: thawing is not the function's time.
    if (sandbox.frozen !== null) await this.thawForUse(sandbox);
    const active: ActiveInvocation = {
      requestId: randomUUID(),
      invocationId: request.invocationId,
      log: new LogBuffer(this.logCapBytes),
    };
    active.log.takeFrom(sandbox.pendingLog);
    sandbox.active = active;
    // Under a span the sampler left out, no handler-run span: the function gets that span's context.
    const run =
      span === null || !span.recording
        ? null
        : this.tracer.startSpan('handler run', {
            kind: 'internal',
            parent: span,
            attributes: { 'faas.invocation_id': request.invocationId },
          });
    const started = performance.now();
    const event = await new Promise<SandboxEvent>((resolve) => {
      const timer = setTimeout(() => settle({ kind: 'timeout' }), request.timeoutMs);
      const settle = (settled: SandboxEvent): void => {
        clearTimeout(timer);
        sandbox.listener = null;
        resolve(settled);
      };
      sandbox.listener = (event) => {
        if (event.kind !== 'message') return settle(event);
        const { message } = event;
        if ((message.type === 'result' || message.type === 'error') && message.id === active.requestId) {
          return settle(event);
        }
        this.unexpected(sandbox, message.type, 'during an invocation');
      };
      this.send(sandbox, {
        type: 'invoke',
        id: active.requestId,
        invocationId: request.invocationId,
        event: request.eventJson,
        deadline: Date.now() + request.timeoutMs,
        clientContext: request.clientContext,
        traceparent: run === null ? span?.traceparent : run.traceparent,
      });
    });
    const durationMs = round(performance.now() - started);
    sandbox.active = null;

    const outcome = await this.outcomeOf(sandbox, spec, event, request, durationMs, active.log);
    if (span !== null) {
      if (outcome.status !== 'success') {
        const failure = `${outcome.status}${outcome.error === undefined ? '' : `: ${outcome.error.name}`}`;
        run?.fail(failure);
        span.fail(failure);
      }
      run?.end();
      span.end();
    }
    sandbox.replaceStemCell?.();
    outcome.logKey = this.uploadLog(spec.functionName, request.invocationId, active.log);
    if (!outcome.reusable) {
      await this.destroySandbox(instanceId);
    } else if (sandbox.state === 'busy' && sandbox.exit === null) {
      sandbox.state = 'idle';
      sandbox.invocations += 1;
      sandbox.idleSince = Date.now();
      if (this.freezeIdleMs === 0) this.freeze(sandbox);
    } else {
      // It died or was destroyed while the log was being stored.
      outcome.reusable = false;
      await this.destroySandbox(instanceId);
    }
    return outcome;
  }

  destroySandbox(instanceId: string): Promise<void> {
    const sandbox = this.sandboxes.get(instanceId);
    if (sandbox === undefined) return Promise.resolve();
    sandbox.destroying ??= this.teardown(sandbox);
    return sandbox.destroying;
  }

  listSandboxes(): Promise<SandboxInfo[]> {
    return Promise.resolve(
      [...this.sandboxes.values()].flatMap((sandbox) => {
        const { spec, state } = sandbox;
        if (spec === null || state === 'stem') return [];
        return [
          {
            instanceId: sandbox.instanceId,
            functionName: spec.functionName,
            incarnation: spec.incarnation,
            version: spec.version,
            pid: sandbox.proc?.pid ?? null,
            state,
            createdAt: sandbox.createdAt,
            invocations: sandbox.invocations,
          },
        ];
      }),
    );
  }

  /** Live output of this node's sandboxes from now on (the StreamLogs RPC); returns the unsubscribe function. */
  onLog(listener: (line: SandboxLogLine) => void): () => void {
    this.logListeners.add(listener);
    return () => void this.logListeners.delete(listener);
  }

  /** The node's budgets and what its sandboxes (stem cells included) hold of them; null without a budget. */
  budgetUsage(): { memoryMB: number; pids: number; usedMemoryMB: number; usedPids: number } | null {
    if (this.budget === undefined) return null;
    return {
      memoryMB: this.budget.memoryMB,
      pids: this.budget.pids,
      usedMemoryMB: this.charged.memoryMB,
      usedPids: this.charged.sandboxes * this.limits.pids,
    };
  }

  /** Whether idle sandboxes are frozen on this node: the runtime's mechanism and this Agent's setting. */
  freezing(): Enforcement {
    const runtime = this.runtime.capabilities.freezing;
    if (!runtime.enforced) return runtime;
    if (this.freezeIdleMs === false) {
      return { mechanism: runtime.mechanism, enforced: false, note: 'turned off (--freeze-idle off)' };
    }
    const when = this.freezeIdleMs === 0 ? 'right after each invocation' : `after ${this.freezeIdleMs} ms idle`;
    return { ...runtime, note: `${runtime.note}, ${when}` };
  }

  /** Destroy every sandbox and wait for their processes to exit. Idempotent; later creations reject UNAVAILABLE. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.freezeTimer !== null) clearInterval(this.freezeTimer);
      await this.stemCells?.close();
      const destroyAll = (): Promise<unknown> =>
        Promise.all([...this.sandboxes.keys()].map((id) => this.destroySandbox(id)));
      await destroyAll();
      await Promise.allSettled([...this.creations]);
      await destroyAll();
      await this.flushLogs();
      this.logger.debug({}, 'agent closed');
    })();
    return this.closing;
  }

  // ---- creation ----

  private closedError(): PlatformError {
    return new PlatformError('UNAVAILABLE', `agent ${this.nodeId} is closed`);
  }

  /** Create a function's sandbox; `chargedMB` was charged against the budget for it by `createSandbox`. */
  private async create(spec: SandboxSpec, chargedMB: number): Promise<InstanceRef> {
    let charge = chargedMB;
    try {
      const codeDir = await this.ensureCode(spec.codeSha256);
      if (this.closing !== null) throw this.closedError();
      return await this.createFrom(spec, codeDir, () => {
        const taken = charge;
        charge = 0;
        return taken;
      });
    } finally {
      // Still held here: no sandbox took it (a stem cell was used, or nothing was launched).
      this.uncharge(charge);
    }
  }

  private async createFrom(spec: SandboxSpec, codeDir: string, takeCharge: () => number): Promise<InstanceRef> {
    const started = performance.now();
    const kind = sandboxKind(spec.config);
    // A function with start-up variables gets them at launch, its code in place already: no stem cell had them.
    const env = startupEnv(spec.config);
    const start = Object.keys(env).length === 0 ? undefined : { env, codeDir };
    let stem = start === undefined ? this.takeStemCell(kind) : null;
    if (stem !== null && (stem.exit !== null || stem.state !== 'stem')) {
      // It died a moment ago and its exit is still being handled: start a fresh one instead.
      this.stemCells?.forget(stem);
      void this.destroySandbox(stem.instanceId);
      stem = null;
    }
    const sandbox = stem ?? (await this.prepare(kind, takeCharge(), true, start));
    const log = this.logger.child({
      instanceId: sandbox.instanceId,
      functionName: spec.functionName,
      version: spec.version,
    });
    try {
      sandbox.spec = spec;
      sandbox.fromStemCell = stem !== null;
      sandbox.state = 'starting';
      if (sandbox.frozen !== null) await this.thawForUse(sandbox);
      if (start === undefined) await placeCode(codeDir, sandbox.taskDir);
      await this.initialise(sandbox, spec);
      if (sandbox.state !== 'starting') throw this.closedError();
      sandbox.initMs = round(performance.now() - started);
      sandbox.state = 'idle';
      sandbox.idleSince = Date.now();
      log.debug({ pid: sandbox.proc?.pid, initMs: sandbox.initMs, stemCell: sandbox.fromStemCell }, 'sandbox ready');
      return {
        instanceId: sandbox.instanceId,
        functionName: spec.functionName,
        incarnation: spec.incarnation,
        version: spec.version,
        nodeId: this.nodeId,
        createdAt: sandbox.idleSince,
        initMs: sandbox.initMs,
        invocations: 0,
        idleSince: sandbox.idleSince,
      };
    } catch (err) {
      await this.destroySandbox(sandbox.instanceId);
      if (this.closing !== null) throw this.closedError();
      log.debug({ err }, 'sandbox creation failed');
      throw PlatformError.from(err);
    }
  }

  /**
   * A ready stem cell of this kind, or null. Its replacement starts once the cell has answered its first invocation
   * (`replaceStemCell`): launching a sandbox takes the node's CPU for tens of ms, which the cold start that took the
   * cell would otherwise wait behind. A cell torn down without an answer (a deploy's trial, a failed init) is
   * replaced after `replaceAfterMs`: the invocations that follow a deploy take the kind's other cells meanwhile.
   */
  private takeStemCell(kind: string): Sandbox | null {
    if (this.stemCells === null) return null;
    let replace = (): void => {};
    const replaced = new Promise<void>((resolve) => (replace = resolve));
    const cell = this.stemCells.take(kind, replaced);
    if (cell === null) return null;
    const timer = setTimeout(() => cell.replaceStemCell?.(), this.stemCells.replaceAfterMs);
    timer.unref();
    cell.replaceStemCell = () => {
      cell.replaceStemCell = null;
      clearTimeout(timer);
      // After the answer in flight has left this process.
      setImmediate(replace);
    };
    return cell;
  }

  /**
   * Launch a generic sandbox of a kind and wait for its guest to connect: a stem cell, not yet any function's.
   * `chargedMB`: its memory, already charged against the budget by the caller; otherwise (0) it is charged here,
   * discarding idle stem cells to make room when `evict` (a function's sandbox, not another stem cell). With `start`,
   * the sandbox is one function's from the outset: its code is placed before launch and `start.env` (its start-up
   * variables) is in the guest's environment from the start.
   */
  private async prepare(
    kind: string,
    chargedMB = 0,
    evict = false,
    start?: { env: Record<string, string>; codeDir: string },
  ): Promise<Sandbox> {
    const { runtime, memoryMB, network, allowNet } = parseKind(kind);
    if (this.closing !== null) {
      this.uncharge(chargedMB);
      throw this.closedError();
    }
    if (chargedMB === 0) {
      const refused = this.charge(memoryMB, evict);
      if (refused !== null) throw refused;
    }
    const instanceId = randomUUID();
    const dir = join(this.sandboxRoot, instanceId);
    let markSocketClosed = (): void => {};
    const socketClosed = new Promise<void>((resolve) => {
      markSocketClosed = resolve;
    });
    const sandbox: Sandbox = {
      instanceId,
      kind,
      spec: null,
      dir,
      taskDir: join(dir, 'task'),
      createdAt: Date.now(),
      state: 'starting',
      initMs: 0,
      invocations: 0,
      idleSince: 0,
      fromStemCell: false,
      launching: null,
      proc: null,
      socket: null,
      socketClosed,
      markSocketClosed,
      exit: null,
      protocolError: null,
      killedAfterHangUp: false,
      listener: null,
      active: null,
      pendingLog: new LogBuffer(this.logCapBytes),
      lastMaxRssBytes: null,
      destroying: null,
      unexpectedMessages: 0,
      chargedMB: memoryMB,
      frozen: null,
      replaceStemCell: null,
    };
    this.sandboxes.set(instanceId, sandbox);
    try {
      await this.makeDirs(sandbox);
      // The memory of discarded stem cells is free only once they are gone (the node's cgroup is limited to it).
      if (this.evictions.size > 0) await Promise.all(this.evictions);
      if (start !== undefined) await placeCode(start.codeDir, sandbox.taskDir);
      // Destroyed while its directories were made (the Agent is closing): launch nothing that nobody would kill.
      if (sandbox.state !== 'starting') throw this.closedError();
      sandbox.launching = this.runtime.launch({
        instanceId,
        taskDir: sandbox.taskDir,
        scratchDir: join(dir, 'tmp'),
        runtime,
        network,
        allowNet,
        limits: { ...this.limits, memoryMB },
        env: start?.env,
      });
      const proc = await sandbox.launching;
      sandbox.proc = proc;
      this.attach(sandbox, proc.channel);
      void proc.exited.then((exit) => this.onExit(sandbox, exit));
      if (sandbox.state !== 'starting') throw this.closedError();
      await this.awaitHello(sandbox, start === undefined ? [] : Object.keys(start.env));
      if (sandbox.state !== 'starting') throw this.closedError();
      sandbox.state = 'stem';
      sandbox.idleSince = Date.now();
      if (this.freezeIdleMs === 0) this.freeze(sandbox);
      return sandbox;
    } catch (err) {
      await this.destroySandbox(instanceId);
      // A teardown that ran before the process existed could not kill it.
      if (sandbox.proc !== null && sandbox.exit === null) await sandbox.proc.kill();
      if (this.closing !== null) throw this.closedError();
      throw PlatformError.from(err);
    }
  }

  /**
   * `dir` (0700), `dir/task` for the code (0755: the sandbox reads it through its own bind mount), `dir/tmp` for
   * scratch (0700). No sandbox user walks these paths: isolating runtimes bind `task` into the sandbox as root (see
   * bwrap-runtime.ts), and without root the sandbox runs as the Agent's own user.
   */
  private async makeDirs(sandbox: Sandbox): Promise<void> {
    await this.start();
    await mkdir(join(sandbox.dir, 'tmp'), { recursive: true, mode: 0o700 });
    await mkdir(sandbox.taskDir, { mode: 0o755 });
    await chmod(sandbox.taskDir, 0o755);
  }

  /**
   * Once per Agent, before its first sandbox: the work directory becomes private (0700), and sandbox directories
   * left by an Agent that died are removed (their processes died with it).
   */
  private start(): Promise<void> {
    this.started ??= (async () => {
      await mkdir(this.sandboxRoot, { recursive: true, mode: 0o700 });
      await chmod(resolve(this.sandboxRoot, '..'), 0o700);
      await chmod(this.sandboxRoot, 0o700);
      const leftovers = await readdir(this.sandboxRoot);
      for (const entry of leftovers) await rm(join(this.sandboxRoot, entry), { recursive: true, force: true });
      if (leftovers.length > 0) this.logger.info({ count: leftovers.length }, 'removed leftover sandbox directories');
    })();
    return this.started;
  }

  /** The extracted code directory of a bundle: fetched and extracted once per node, shared by concurrent creations. */
  private ensureCode(sha256: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      return Promise.reject(
        new PlatformError('INVALID_BUNDLE', `code hash ${JSON.stringify(sha256)} is not a lowercase hex sha256`),
      );
    }
    const existing = this.extractions.get(sha256);
    if (existing !== undefined) return existing;
    const dir = join(this.codeRoot, sha256);
    const extraction = (async () => {
      if (await exists(dir)) return dir;
      const key = blobKeys.code(sha256);
      const zip = await this.blobStore.get(key);
      if (zip === null) throw new PlatformError('NOT_FOUND', `code bundle ${key} is not in the blob store`);
      const actual = createHash('sha256').update(zip).digest('hex');
      if (actual !== sha256) {
        throw new PlatformError('INVALID_BUNDLE', `code bundle ${key} is corrupt: its sha256 is ${actual}`);
      }
      await extractBundle(zip, dir);
      return dir;
    })();
    this.extractions.set(sha256, extraction);
    const forget = (): void => {
      this.extractions.delete(sha256);
    };
    extraction.then(forget, forget);
    return extraction;
  }

  /** Run `body` with a listener on the sandbox's events and a timer, until it settles the promise. */
  private phase<T>(
    sandbox: Sandbox,
    timeoutMs: number,
    body: (event: SandboxEvent, resolve: (value: T) => void, reject: (error: PlatformError) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => sandbox.listener?.({ kind: 'timeout' }), timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        sandbox.listener = null;
      };
      sandbox.listener = (event) =>
        body(
          event,
          (value) => {
            done();
            resolve(value);
          },
          (error) => {
            done();
            reject(error);
          },
        );
    });
  }

  /**
   * Wait for the guest's hello, within initTimeoutMs. A sandbox started with a function's start-up variables
   * (`startupVariables`, their names) that dies first failed because of them (a NODE_OPTIONS preload that throws, say):
   * that is the function's init error.
   */
  private awaitHello(sandbox: Sandbox, startupVariables: string[]): Promise<void> {
    const timeoutMs = this.initTimeoutMs;
    return this.phase<void>(sandbox, timeoutMs, (event, resolve, reject) => {
      if (event.kind === 'timeout') {
        return reject(
          new PlatformError('INTERNAL', `sandbox ${sandbox.instanceId} did not say hello within ${timeoutMs} ms`),
        );
      }
      if (event.kind === 'exit') {
        const why = sandbox.protocolError === null ? '' : ` after a protocol error (${sandbox.protocolError})`;
        if (startupVariables.length > 0 && sandbox.protocolError === null) {
          const message =
            `function init failed: the process ${describeExit(sandbox, event.exit)} as Node started with the ` +
            `function's ${startupVariables.join(', ')}${stderrSuffix(event.exit)}`;
          return reject(
            new PlatformError('FUNCTION_INIT_ERROR', message, { details: { errorType: 'Runtime.ExitError' } }),
          );
        }
        return reject(
          new PlatformError(
            'INTERNAL',
            `sandbox process ${describeExit(sandbox, event.exit)} before saying hello to the agent${why}${stderrSuffix(event.exit)}`,
          ),
        );
      }
      if (event.message.type === 'hello') return resolve();
      this.unexpected(sandbox, event.message.type, 'before hello');
    });
  }

  /** Send init and wait for the guest's answer, within initTimeoutMs. */
  private initialise(sandbox: Sandbox, spec: SandboxSpec): Promise<void> {
    const initId = randomUUID();
    const timeoutMs = this.initTimeoutMs;
    const initialised = this.phase<void>(sandbox, timeoutMs, (event, resolve, reject) => {
      if (event.kind === 'timeout') {
        return reject(
          new PlatformError('FUNCTION_INIT_ERROR', `function init did not finish within ${timeoutMs} ms`, {
            details: { errorType: 'Runtime.InitTimeout' },
          }),
        );
      }
      if (event.kind === 'exit') {
        const { exit } = event;
        void this.limitHitsOf(sandbox).then((hits) => {
          const why = sandbox.protocolError === null ? '' : ` after a protocol error (${sandbox.protocolError})`;
          const oom = hits.memory || isOutOfMemory(exit);
          const message = oom
            ? `function init failed: ${outOfMemoryMessage(spec.config.memoryMB)}`
            : `function init failed: the process ${describeExit(sandbox, exit)} during init${why}${limitSuffix(hits, this.limits)}`;
          reject(
            new PlatformError('FUNCTION_INIT_ERROR', `${message}${stderrSuffix(exit)}`, {
              details: { errorType: oom ? 'Runtime.OutOfMemory' : 'Runtime.ExitError' },
            }),
          );
        });
        return;
      }
      const { message } = event;
      if (message.type === 'init-ok' && message.id === initId) return resolve();
      if (message.type === 'init-error' && message.id === initId) {
        const { error } = message;
        return reject(
          new PlatformError('FUNCTION_INIT_ERROR', `function init failed: ${error.name}: ${error.message}`, {
            details: { errorType: error.name, stack: error.stack },
          }),
        );
      }
      this.unexpected(sandbox, message.type, 'during init');
    });
    this.send(sandbox, {
      type: 'init',
      id: initId,
      handler: spec.config.handler,
      codeDir: sandbox.proc?.guestTaskDir ?? sandbox.taskDir,
      env: { ...spec.config.env, ...spec.secretEnv },
      functionName: spec.functionName,
      functionVersion: spec.version,
      memoryMB: spec.config.memoryMB,
      timeoutMs: spec.config.timeoutSeconds * 1000,
      offline: !spec.config.network && this.runtime.capabilities.network.enforced,
    });
    return initialised;
  }

  private async limitHitsOf(sandbox: Sandbox): Promise<LimitHits> {
    const none: LimitHits = { memory: false, pids: false, tmp: false };
    return (await sandbox.proc?.limitHits().catch(() => none)) ?? none;
  }

  // ---- the guest channel ----

  /** Speak the protocol over the sandbox's channel: its one and only peer is the process the runtime started. */
  private attach(sandbox: Sandbox, socket: Duplex): void {
    sandbox.socket = socket;
    const decoder = new FrameDecoder(guestFrameLimits);
    socket.on('data', (chunk: Buffer) => {
      if (sandbox.protocolError !== null) return;
      try {
        for (const frame of decoder.push(chunk)) this.onMessage(sandbox, parseGuestMessage(frame));
      } catch (err) {
        this.protocolFailure(sandbox, err instanceof Error ? err.message : String(err));
      }
    });
    // A channel that ends inside a frame: the rest of that frame is dropped. The guest hung up, so it is discarded
    // (`afterHangUp`), and its exit status says why better than the truncation does (a process that exits while
    // its output is still being written cuts its last frame short).
    socket.on('end', () => {
      if (sandbox.protocolError !== null) return;
      try {
        decoder.end();
      } catch (err) {
        this.logger.debug({ err, instanceId: sandbox.instanceId }, 'sandbox channel ended inside a frame');
      }
    });
    socket.on('error', (err) => this.logger.debug({ err, instanceId: sandbox.instanceId }, 'sandbox channel error'));
    socket.on('close', () => {
      sandbox.markSocketClosed();
      if (sandbox.exit === null && sandbox.state !== 'stopping') void this.afterHangUp(sandbox);
    });
  }

  /**
   * The guest closed its channel: it is exiting, or it hung up and lives on, of no use any more. It gets
   * `hangUpGraceMs` to exit, so that its own exit status is what the Agent reports; then it is killed.
   */
  private async afterHangUp(sandbox: Sandbox): Promise<void> {
    const proc = sandbox.proc;
    if (proc === null) return;
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      proc.exited.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), hangUpGraceMs);
      }),
    ]);
    clearTimeout(timer);
    if (exited || sandbox.state === 'stopping') return;
    sandbox.killedAfterHangUp = true;
    this.logger.warn({ instanceId: sandbox.instanceId }, 'sandbox closed its channel and did not exit; killing it');
    await this.killProcess(sandbox);
  }

  private onMessage(sandbox: Sandbox, message: GuestMessage): void {
    if (message.type === 'log') {
      const { active } = sandbox;
      const current = active !== null && message.id === active.requestId ? active : null;
      if (current !== null) current.log.append(message.text);
      else sandbox.pendingLog.append(message.text);
      if (this.logListeners.size > 0) {
        const { instanceId, spec } = sandbox;
        const line: SandboxLogLine = {
          instanceId,
          functionName: spec?.functionName ?? null,
          invocationId: current?.invocationId ?? null,
          version: spec?.version ?? null,
          stream: message.stream,
          text: message.text,
          time: Date.now(),
        };
        for (const listener of this.logListeners) {
          try {
            listener(line);
          } catch (err) {
            this.logger.warn({ err, instanceId }, 'a log listener failed');
          }
        }
      }
      return;
    }
    if (message.type === 'result' || message.type === 'error') sandbox.lastMaxRssBytes = message.maxRssBytes;
    if (sandbox.listener !== null) sandbox.listener({ kind: 'message', message });
    else this.unexpected(sandbox, message.type, 'while idle');
  }

  /**
   * A message the protocol does not expect now: logged once per sandbox (a guest must not flood the node's log),
   * and a sandbox that keeps sending them is treated as broken.
   */
  private unexpected(sandbox: Sandbox, type: string, when: string): void {
    sandbox.unexpectedMessages += 1;
    if (sandbox.unexpectedMessages === 1) {
      this.logger.warn({ instanceId: sandbox.instanceId, type }, `unexpected message from a sandbox ${when}`);
    }
    if (sandbox.unexpectedMessages > maxUnexpectedMessages) {
      this.protocolFailure(sandbox, `more than ${maxUnexpectedMessages} unexpected messages`);
    }
  }

  private protocolFailure(sandbox: Sandbox, reason: string): void {
    if (sandbox.protocolError !== null) return;
    sandbox.protocolError = reason;
    this.logger.warn({ instanceId: sandbox.instanceId, reason }, 'sandbox broke the protocol; killing it');
    sandbox.socket?.destroy();
    void this.killProcess(sandbox);
  }

  private send(sandbox: Sandbox, message: HostMessage): void {
    if (sandbox.socket !== null) writeMessage(sandbox.socket, message);
  }

  private async onExit(sandbox: Sandbox, exit: SandboxExit): Promise<void> {
    sandbox.exit = exit;
    // Data the guest sent just before exiting (an error, its last logs) may still be in flight.
    if (sandbox.socket !== null) {
      await Promise.race([sandbox.socketClosed, new Promise((resolve) => setTimeout(resolve, socketDrainMs))]);
    }
    if (sandbox.listener !== null) {
      sandbox.listener({ kind: 'exit', exit });
      return;
    }
    if (sandbox.state === 'stem') {
      this.logger.warn(
        { instanceId: sandbox.instanceId, code: exit.code, signal: exit.signal, stderrTail: exit.stderrTail },
        'stem cell exited; discarding it',
      );
      this.stemCells?.forget(sandbox);
      void this.destroySandbox(sandbox.instanceId);
      return;
    }
    if (sandbox.state === 'idle') {
      this.logger.warn(
        { instanceId: sandbox.instanceId, code: exit.code, signal: exit.signal, stderrTail: exit.stderrTail },
        'idle sandbox exited; discarding it',
      );
      void this.destroySandbox(sandbox.instanceId);
    }
  }

  private async killProcess(sandbox: Sandbox): Promise<void> {
    const proc = sandbox.proc ?? (sandbox.launching === null ? null : await sandbox.launching.catch(() => null));
    if (proc !== null) await proc.kill();
  }

  private async teardown(sandbox: Sandbox): Promise<void> {
    sandbox.state = 'stopping';
    await this.killProcess(sandbox);
    sandbox.socket?.destroy();
    try {
      await rm(sandbox.dir, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn({ err, instanceId: sandbox.instanceId }, 'could not remove the sandbox directory');
    }
    this.sandboxes.delete(sandbox.instanceId);
    this.uncharge(sandbox.chargedMB);
    sandbox.chargedMB = 0;
    this.logger.debug({ instanceId: sandbox.instanceId }, 'sandbox destroyed');
  }

  // ---- the node's budget ----

  /**
   * Charge one sandbox of `memoryMB` against the node's budget, or say why the node is full (TOO_MANY_REQUESTS,
   * naming the limit). A function's creation (`evict`) first discards idle stem cells to make room: they are only
   * a head start.
   */
  private charge(memoryMB: number, evict: boolean): PlatformError | null {
    const budget = this.budget;
    if (budget !== undefined) {
      const maxSandboxes = Math.floor(budget.pids / this.limits.pids);
      const fits = (): boolean =>
        this.charged.memoryMB + memoryMB <= budget.memoryMB && this.charged.sandboxes + 1 <= maxSandboxes;
      while (!fits() && evict && this.evictStemCell()) {
        // Evicted one; check again.
      }
      if (this.charged.sandboxes + 1 > maxSandboxes) {
        return nodeFull(
          `node ${this.nodeId} is full: its pid budget of ${budget.pids} (--node-pids) holds ${maxSandboxes} ` +
            `sandboxes of ${this.limits.pids} processes each, and all are in use`,
        );
      }
      if (this.charged.memoryMB + memoryMB > budget.memoryMB) {
        return nodeFull(
          `node ${this.nodeId} is full: its memory budget of ${budget.memoryMB} MB (--node-memory) has ` +
            `${budget.memoryMB - this.charged.memoryMB} MB left, and the sandbox needs ${memoryMB} MB`,
        );
      }
    }
    this.charged.sandboxes += 1;
    this.charged.memoryMB += memoryMB;
    return null;
  }

  private uncharge(memoryMB: number): void {
    if (memoryMB === 0) return;
    this.charged.sandboxes -= 1;
    this.charged.memoryMB -= memoryMB;
  }

  /** Discard one idle stem cell, its charge released at once (it is killed before anything new launches). */
  private evictStemCell(): boolean {
    const cell = this.stemCells?.evictOne() ?? null;
    if (cell === null) return false;
    this.uncharge(cell.chargedMB);
    cell.chargedMB = 0;
    const evicted = this.destroySandbox(cell.instanceId).finally(() => this.evictions.delete(evicted));
    this.evictions.add(evicted);
    return true;
  }

  // ---- freezing idle sandboxes ----

  /** Freeze idle sandboxes and stem cells that have waited `freezeIdleMs` (runs on a timer). */
  private freezeIdle(): void {
    if (this.freezeIdleMs === false || this.closing !== null) return;
    const before = Date.now() - this.freezeIdleMs;
    for (const sandbox of this.sandboxes.values()) {
      if ((sandbox.state === 'idle' || sandbox.state === 'stem') && sandbox.frozen === null) {
        if (sandbox.idleSince <= before) this.freeze(sandbox);
      }
    }
  }

  private freeze(sandbox: Sandbox): void {
    const proc = sandbox.proc;
    if (proc === null || !proc.freezable || sandbox.exit !== null) return;
    sandbox.frozen = proc.freeze().catch((err: unknown) => {
      this.logger.warn({ err, instanceId: sandbox.instanceId }, 'could not freeze an idle sandbox');
    });
  }

  /**
   * Thaw a sandbox about to be used (an invocation, or a stem cell's init). A sandbox that cannot be thawed, or
   * died meanwhile, is gone: nothing was sent to it, so the caller may retry elsewhere.
   */
  private async thawForUse(sandbox: Sandbox): Promise<void> {
    const frozen = sandbox.frozen;
    sandbox.frozen = null;
    try {
      await frozen;
      await sandbox.proc?.thaw();
    } catch (err) {
      this.logger.warn({ err, instanceId: sandbox.instanceId }, 'could not thaw a sandbox; discarding it');
      void this.destroySandbox(sandbox.instanceId);
    }
    if (sandbox.exit !== null || sandbox.destroying !== null) {
      void this.destroySandbox(sandbox.instanceId);
      throw new PlatformError('UNAVAILABLE', `sandbox ${sandbox.instanceId} is gone`, {
        details: { notDelivered: true },
      });
    }
  }

  // ---- outcomes ----

  private async outcomeOf(
    sandbox: Sandbox,
    spec: SandboxSpec,
    event: SandboxEvent,
    request: InvokeRequest,
    durationMs: number,
    log: LogBuffer,
  ): Promise<InvokeOutcome> {
    const peak = sandbox.lastMaxRssBytes;
    if (event.kind === 'message' && event.message.type === 'result') {
      // The result's size was checked as its frame arrived (a larger one breaks the protocol).
      return invokeOutcome('success', durationMs, peak, true, { payloadJson: event.message.payload });
    }
    // A failure: which limits did the sandbox run into? (Read before the sandbox and its cgroup are gone.)
    const hits = await this.limitHitsOf(sandbox);
    const errorCode = event.kind === 'message' && event.message.type === 'error' ? event.message.error.code : undefined;
    const limits = limitSuffix(hits, this.limits, errorCode);
    if (limits !== '') log.note(`the sandbox hit a limit${limits}`);
    switch (event.kind) {
      case 'message': {
        const message = event.message as ErrorMessage;
        if (message.fatal) log.note(`${message.error.name}: the sandbox exits after this error and is discarded`);
        const error = toSerializedError(message.error);
        error.message += limits;
        return invokeOutcome('error', durationMs, peak, !message.fatal && limits === '', { error });
      }
      case 'timeout': {
        const atTimeout = (await sandbox.proc?.memoryBytes()) ?? peak;
        const message = `Task timed out after ${(request.timeoutMs / 1000).toFixed(2)} seconds${limits}`;
        log.note(message);
        return invokeOutcome('timeout', durationMs, atTimeout, false, { error: { name: 'TimeoutError', message } });
      }
      case 'exit': {
        const { exit } = event;
        const oom = hits.memory || isOutOfMemory(exit);
        let message: string;
        if (oom) {
          message = outOfMemoryMessage(spec.config.memoryMB);
        } else if (sandbox.protocolError !== null) {
          message = `the sandbox broke the protocol during the invocation (${sandbox.protocolError})`;
        } else if (sandbox.state === 'stopping') {
          message = 'the sandbox was destroyed during the invocation';
        } else {
          message = `process ${describeExit(sandbox, exit)} during the invocation${limits}`;
        }
        log.note(message);
        const excerpt = stderrExcerpt(exit);
        if (excerpt !== '') log.note(`sandbox stderr:\n${excerpt}`);
        const error = { name: oom ? 'Runtime.OutOfMemory' : 'Runtime.ExitError', message };
        return invokeOutcome(oom ? 'oom' : 'crash', durationMs, peak, false, { error });
      }
    }
  }

  /**
   * Ships a log to the blob store off the invocation's path (ADR-001 §4: the Agent uploads logs itself) and
   * returns its key at once; an empty log is not stored (key null). `close()` waits for pending uploads.
   */
  private uploadLog(functionName: string, invocationId: string, log: LogBuffer): string | null {
    if (log.isEmpty) return null;
    const key = blobKeys.log(functionName, new Date(), invocationId);
    const upload = this.blobStore
      .put(key, log.render())
      .catch((err: unknown) => this.logger.warn({ err, key }, 'could not store the invocation log'))
      .finally(() => this.uploads.delete(upload));
    this.uploads.add(upload);
    return key;
  }

  /** Resolves when every log upload started so far has finished. */
  async flushLogs(): Promise<void> {
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
  }
}

function nodeFull(message: string): PlatformError {
  return new PlatformError('TOO_MANY_REQUESTS', message, { details: { retryAfterSeconds: 1 } });
}

function toSerializedError(error: SerializedError): SerializedError {
  const out: SerializedError = { name: error.name, message: error.message };
  if (error.code !== undefined) out.code = error.code;
  if (error.stack !== undefined) out.stack = error.stack;
  return out;
}
