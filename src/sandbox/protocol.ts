/**
 * The message protocol between the Agent (host) and the guest shim inside a sandbox, spoken over the sandbox's
 * Unix-domain socket as newline-delimited JSON: one message per line, every message tagged by `type` and carrying
 * the `id` of the request it belongs to.
 *
 * This module has no imports on purpose: the guest shim loads it, and the guest must stay lean.
 *
 * Flow: the guest connects and sends `hello`; the host sends `init` and gets `init-ok` or `init-error`; then, one
 * at a time, the host sends `invoke` and gets `log` messages followed by exactly one `result` or `error`.
 */

/** An error as it crosses the socket: plain data (structurally the same as core's `SerializedError`). */
export interface WireError {
  name: string;
  code?: string | undefined;
  message: string;
  stack?: string | undefined;
}

// ---- host → guest ----

export interface InitMessage {
  type: 'init';
  id: string;
  /** "file.export", e.g. "index.handler" or "src/app.main". */
  handler: string;
  /** Absolute path of the extracted function code. */
  codeDir: string;
  env: Record<string, string>;
  functionName: string;
  functionVersion: number;
  memoryMB: number;
  timeoutMs: number;
  /**
   * The sandbox has no network: the function was deployed without network access and the runtime enforces that.
   * The guest then explains the network failures its errors report.
   */
  offline: boolean;
}

export interface InvokeMessage {
  type: 'invoke';
  id: string;
  invocationId: string;
  eventJson: string;
  /** When the invocation times out, in ms since the epoch. */
  deadline: number;
}

export type HostMessage = InitMessage | InvokeMessage;

// ---- guest → host ----

export interface HelloMessage {
  type: 'hello';
  id: '';
  pid: number;
  nodeVersion: string;
}

export interface InitOkMessage {
  type: 'init-ok';
  id: string;
  /** Time the guest spent loading the function module. */
  initMs: number;
}

export interface InitErrorMessage {
  type: 'init-error';
  id: string;
  error: WireError;
}

export interface ResultMessage {
  type: 'result';
  id: string;
  /** The handler's result as JSON text; `undefined` became `null`. */
  payloadJson: string;
  maxRssBytes: number;
}

export interface ErrorMessage {
  type: 'error';
  id: string;
  error: WireError;
  maxRssBytes: number;
  /** True when the guest exits right after this message (uncaught exception): the instance must be discarded. */
  fatal: boolean;
}

export interface LogMessage {
  type: 'log';
  id: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

export type GuestMessage = HelloMessage | InitOkMessage | InitErrorMessage | ResultMessage | ErrorMessage | LogMessage;

/** Error names the guest uses for failures that are not the function's own errors (Lambda's names where it has one). */
export const guestErrorNames = {
  /** The handler file does not exist or does not export the named function. */
  handlerNotFound: 'Runtime.HandlerNotFound',
  /** The function's code (or a module it imports) has a syntax error. */
  syntaxError: 'Runtime.UserCodeSyntaxError',
  /** A module the function imports cannot be found. */
  importModuleError: 'Runtime.ImportModuleError',
  /** The handler's result cannot be serialised to JSON or is too large. */
  responseInvalid: 'Runtime.ResponseInvalid',
  /** A promise rejection nobody handled during the invocation. */
  unhandledRejection: 'Runtime.UnhandledPromiseRejection',
  /** The event JSON could not be parsed (the gateway validates it, so this is a platform bug). */
  invalidEvent: 'Runtime.InvalidEvent',
  /** The host broke the protocol (invoke before init, two invocations at once). */
  protocolError: 'Runtime.ProtocolError',
} as const;

/** Largest frame either side accepts; a longer line is a protocol violation. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Largest handler result, in bytes of JSON. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** A malformed frame or message. The receiver should drop the connection: the peer is broken. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** One frame on the wire: the message as a single line of JSON (JSON.stringify escapes newlines in strings). */
export function encodeMessage(message: HostMessage | GuestMessage): string {
  return `${JSON.stringify(message)}\n`;
}

const newline = 0x0a;

/**
 * Splits a byte stream into lines. Chunks may end anywhere, including inside a multi-byte character; bytes are
 * only decoded once a whole line is there. A line longer than `maxFrameBytes` throws, and so does every later
 * push: the stream cannot be resynchronised.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed: ProtocolError | null = null;

  constructor(private readonly maxFrameBytes: number = MAX_FRAME_BYTES) {}

  /** Feed a chunk; returns the complete lines it finished (without newlines; empty lines are skipped). */
  push(chunk: Uint8Array): string[] {
    if (this.failed) throw this.failed;
    const lines: string[] = [];
    let data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (;;) {
      const at = data.indexOf(newline);
      if (at === -1) break;
      if (this.pendingBytes + at > this.maxFrameBytes) this.fail();
      const tail = data.subarray(0, at);
      const line =
        this.pendingBytes === 0 ? tail.toString('utf8') : Buffer.concat([...this.pending, tail]).toString('utf8');
      this.pending = [];
      this.pendingBytes = 0;
      if (line.length > 0) lines.push(line);
      data = data.subarray(at + 1);
    }
    if (data.length > 0) {
      if (this.pendingBytes + data.length > this.maxFrameBytes) this.fail();
      // Copy: the caller may reuse its buffer.
      this.pending.push(Buffer.from(data));
      this.pendingBytes += data.length;
    }
    return lines;
  }

  /** Bytes received after the last newline (an incomplete frame). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  private fail(): never {
    this.pending = [];
    this.pendingBytes = 0;
    this.failed = new ProtocolError(`frame exceeds the ${this.maxFrameBytes}-byte limit`);
    throw this.failed;
  }
}

// ---- validation ----

type Fields = Record<string, unknown>;

function preview(line: string): string {
  return line.length > 80 ? `${JSON.stringify(line.slice(0, 80))}...` : JSON.stringify(line);
}

function parseObject(line: string, side: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ProtocolError(`invalid ${side} message: not JSON (${reason}): ${preview(line)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError(`invalid ${side} message: expected a JSON object: ${preview(line)}`);
  }
  return value as Fields;
}

class FieldReader {
  constructor(
    private readonly fields: Fields,
    private readonly what: string,
  ) {}

  private bad(key: string, expected: string): never {
    const got = this.fields[key];
    const shown = got === undefined ? 'nothing' : typeof got === 'string' ? 'a string' : JSON.stringify(got);
    throw new ProtocolError(`invalid ${this.what}: "${key}" must be ${expected}, got ${shown}`);
  }

  string(key: string): string {
    const value = this.fields[key];
    if (typeof value !== 'string') this.bad(key, 'a string');
    return value;
  }

  nonEmptyString(key: string): string {
    const value = this.fields[key];
    if (typeof value !== 'string' || value.length === 0) this.bad(key, 'a non-empty string');
    return value;
  }

  optionalString(key: string): string | undefined {
    const value = this.fields[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') this.bad(key, 'a string when present');
    return value;
  }

  /**
   * A finite number, at least `min` (and at most `max` where given: what a guest reports is bounded before anything
   * stores it).
   */
  number(key: string, min: number, max = Infinity): number {
    const value = this.fields[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.bad(key, max === Infinity ? `a finite number >= ${min}` : `a number from ${min} to ${max}`);
    }
    return value;
  }

  /** An integer, at least `min` (and at most `max`, a safe integer, where given). */
  integer(key: string, min: number, max?: number): number {
    const value = this.fields[key];
    if (max === undefined) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min) this.bad(key, `an integer >= ${min}`);
    } else if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      this.bad(key, `an integer from ${min} to ${max}`);
    }
    return value;
  }

  boolean(key: string): boolean {
    const value = this.fields[key];
    if (typeof value !== 'boolean') this.bad(key, 'a boolean');
    return value;
  }

  stringRecord(key: string): Record<string, string> {
    const value = this.fields[key];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.bad(key, 'an object of strings');
    const out: Record<string, string> = {};
    for (const [name, entry] of Object.entries(value)) {
      if (typeof entry !== 'string') {
        throw new ProtocolError(`invalid ${this.what}: "${key}.${name}" must be a string`);
      }
      out[name] = entry;
    }
    return out;
  }

  error(key: string): WireError {
    const value = this.fields[key];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.bad(key, 'an error object');
    const reader = new FieldReader(value as Fields, `${this.what} "${key}"`);
    const error: WireError = { name: reader.nonEmptyString('name'), message: reader.string('message') };
    const code = reader.optionalString('code');
    const stack = reader.optionalString('stack');
    if (code !== undefined) error.code = code;
    if (stack !== undefined) error.stack = stack;
    return error;
  }
}

/**
 * Bounds on the numbers a guest reports. The guest is the function's process and may lie; these are far above
 * anything real (1 TiB of memory, a day of init) and keep a value like `1e300` out of records, where it would be
 * stored and then fail to read back.
 */
const guestNumberLimits = { maxRssBytes: 2 ** 40, initMs: 86_400_000 } as const;

const hostTypes = ['init', 'invoke'] as const;
const guestTypes = ['hello', 'init-ok', 'init-error', 'result', 'error', 'log'] as const;

function readType<T extends string>(fields: Fields, side: string, types: readonly T[]): T {
  const type = fields['type'];
  if (typeof type !== 'string' || !(types as readonly string[]).includes(type)) {
    throw new ProtocolError(
      `invalid ${side} message: "type" must be one of ${types.join(', ')}, got ${JSON.stringify(type) ?? 'nothing'}`,
    );
  }
  return type as T;
}

/** Parse and validate one line sent by the host. Unknown fields are dropped; anything malformed throws ProtocolError. */
export function parseHostMessage(line: string): HostMessage {
  const fields = parseObject(line, 'host');
  const type = readType(fields, 'host', hostTypes);
  const r = new FieldReader(fields, `${type} message`);
  const id = r.nonEmptyString('id');
  switch (type) {
    case 'init':
      return {
        type,
        id,
        handler: r.nonEmptyString('handler'),
        codeDir: r.nonEmptyString('codeDir'),
        env: r.stringRecord('env'),
        functionName: r.nonEmptyString('functionName'),
        functionVersion: r.integer('functionVersion', 0),
        memoryMB: r.integer('memoryMB', 1),
        timeoutMs: r.number('timeoutMs', 1),
        offline: r.boolean('offline'),
      };
    case 'invoke':
      return {
        type,
        id,
        invocationId: r.nonEmptyString('invocationId'),
        eventJson: r.string('eventJson'),
        deadline: r.number('deadline', 0),
      };
  }
}

/** Parse and validate one line sent by the guest. Unknown fields are dropped; anything malformed throws ProtocolError. */
export function parseGuestMessage(line: string): GuestMessage {
  const fields = parseObject(line, 'guest');
  const type = readType(fields, 'guest', guestTypes);
  const r = new FieldReader(fields, `${type} message`);
  if (type === 'hello') {
    if (fields['id'] !== '') throw new ProtocolError('invalid hello message: "id" must be the empty string');
    return {
      type,
      id: '',
      pid: r.integer('pid', 1),
      nodeVersion: r.nonEmptyString('nodeVersion'),
    };
  }
  const id = r.nonEmptyString('id');
  switch (type) {
    case 'init-ok':
      return { type, id, initMs: r.number('initMs', 0, guestNumberLimits.initMs) };
    case 'init-error':
      return { type, id, error: r.error('error') };
    case 'result':
      return {
        type,
        id,
        payloadJson: r.string('payloadJson'),
        maxRssBytes: r.integer('maxRssBytes', 0, guestNumberLimits.maxRssBytes),
      };
    case 'error':
      return {
        type,
        id,
        error: r.error('error'),
        maxRssBytes: r.integer('maxRssBytes', 0, guestNumberLimits.maxRssBytes),
        fatal: r.boolean('fatal'),
      };
    case 'log': {
      const stream = fields['stream'];
      if (stream !== 'stdout' && stream !== 'stderr') {
        throw new ProtocolError(`invalid log message: "stream" must be "stdout" or "stderr"`);
      }
      return { type, id, stream, text: r.string('text') };
    }
  }
}
