/**
 * The message protocol between the Agent (host) and the guest shim inside a sandbox, spoken over the sandbox's
 * connected socket as length-prefixed frames. Every message is tagged by its type and carries the `id` of the
 * request it belongs to.
 *
 * A frame is a fixed 9-byte prefix, a header and a body:
 *
 *     u32 BE  frame length: header + body bytes (at most MAX_FRAME_BYTES)
 *     u32 BE  header length (at most the frame length)
 *     u8      message type (`frameTypes`)
 *     header  the message's typed fields as a JSON object (`id` and the rest, but not the body)
 *     body    raw bytes: the event of an `invoke`, the payload of a `result`, the UTF-8 text of a `log`; empty for
 *             every other type
 *
 * Events and results travel as the bytes they are, never escaped into another JSON document: the guest is the one
 * place that parses the event and serialises the result.
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
  /** The event as JSON bytes, as the caller sent it (the frame's body). */
  event: Uint8Array;
  /** When the invocation times out, in ms since the epoch. */
  deadline: number;
  /** The caller's client context as JSON text (the Lambda API's `X-Amz-Client-Context`), if it gave one. */
  clientContext?: string | undefined;
  /**
   * The W3C `traceparent` of the Agent's handler-run span, when tracing is on: the handler's `context.traceparent`,
   * `TRACEPARENT` and `_X_AMZN_TRACE_ID`.
   */
  traceparent?: string | undefined;
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
  /** The handler's result as JSON bytes (the frame's body); `undefined` became `null`. */
  payload: Uint8Array;
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
  /** The output (the frame's body, UTF-8). */
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
  /** The event is not JSON (the gateway validates it, so this is a platform bug). */
  invalidEvent: 'Runtime.InvalidEvent',
  /** The host broke the protocol (invoke before init, two invocations at once). */
  protocolError: 'Runtime.ProtocolError',
} as const;

/** Largest frame (header and body) either side accepts; a longer one is a protocol violation. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Largest frame header (its JSON): the typed fields of a message, an error's message and stack included (the guest
 * clips those to 64 Ki characters each), never its event, result or log text.
 */
export const MAX_HEADER_BYTES = 1024 * 1024;

/** Largest event and handler result, in bytes of JSON (a frame body). */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** Bytes before a frame's header: its length, its header's length and its type. */
export const FRAME_PREFIX_BYTES = 9;

/** The type byte of each message. */
export const frameTypes = {
  hello: 1,
  init: 2,
  'init-ok': 3,
  'init-error': 4,
  invoke: 5,
  result: 6,
  error: 7,
  log: 8,
} as const satisfies Record<HostMessage['type'] | GuestMessage['type'], number>;

/** A malformed frame or message. The receiver should drop the connection: the peer is broken. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** One frame as it arrived: its type byte, its header and its body (views of the received bytes). */
export interface Frame {
  type: number;
  header: Buffer;
  body: Buffer;
}

/** What a receiver accepts: the type bytes it knows, each with the largest body it takes. */
export type FrameLimits = Readonly<Record<number, number>>;

/** Frames the guest accepts from the host: `init` has no body; an `invoke`'s body is the event. */
export const hostFrameLimits: FrameLimits = { [frameTypes.init]: 0, [frameTypes.invoke]: MAX_PAYLOAD_BYTES };

/** Frames the host accepts from a guest: a `result`'s body is the payload, a `log`'s its text. */
export const guestFrameLimits: FrameLimits = {
  [frameTypes.hello]: 0,
  [frameTypes['init-ok']]: 0,
  [frameTypes['init-error']]: 0,
  [frameTypes.result]: MAX_PAYLOAD_BYTES,
  [frameTypes.error]: 0,
  [frameTypes.log]: MAX_FRAME_BYTES,
};

const noBody = Buffer.alloc(0);

/** A frame's bytes: the prefix and header, then the body when it is not copied behind them. */
export type FrameBytes = [head: Buffer] | [head: Buffer, body: Buffer];

/** Bodies up to this size are copied behind the header (one write); larger ones are written as they are. */
const inlineBodyBytes = 16 * 1024;

function frameOf(type: number, fields: object, body: Uint8Array): FrameBytes {
  const header = JSON.stringify(fields);
  const headerBytes = Buffer.byteLength(header);
  const inline = body.byteLength <= inlineBodyBytes;
  const head = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + headerBytes + (inline ? body.byteLength : 0));
  head.writeUInt32BE(headerBytes + body.byteLength, 0);
  head.writeUInt32BE(headerBytes, 4);
  head[8] = type;
  head.write(header, FRAME_PREFIX_BYTES, 'utf8');
  if (inline) {
    head.set(body, FRAME_PREFIX_BYTES + headerBytes);
    return [head];
  }
  return [head, Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)];
}

/**
 * One message as the bytes of its frame, in one piece, or two when the body is large (the prefix with the header,
 * then the body, not copied): write them in order, corked so they leave together.
 */
export function encodeMessage(message: HostMessage | GuestMessage): FrameBytes {
  switch (message.type) {
    case 'invoke': {
      const { event, type, ...fields } = message;
      return frameOf(frameTypes[type], fields, event);
    }
    case 'result': {
      const { payload, type, ...fields } = message;
      return frameOf(frameTypes[type], fields, payload);
    }
    case 'log': {
      const { text, type, ...fields } = message;
      return frameOf(frameTypes[type], fields, Buffer.from(text, 'utf8'));
    }
    default: {
      const { type, ...fields } = message;
      return frameOf(frameTypes[type], fields, noBody);
    }
  }
}

/** Where `writeMessage` writes: a socket, as far as it needs one (this module imports nothing, not even types). */
export interface FrameSink {
  readonly destroyed: boolean;
  cork(): void;
  uncork(): void;
  write(chunk: Uint8Array): boolean;
}

/**
 * Writes one message as its frame; nothing once the socket is destroyed. A large body (an event, a result) is
 * written as it is, not copied behind the header: both leave in one writev.
 */
export function writeMessage(sink: FrameSink, message: HostMessage | GuestMessage): void {
  if (sink.destroyed) return;
  const [head, body] = encodeMessage(message);
  if (body === undefined) {
    sink.write(head);
    return;
  }
  sink.cork();
  sink.write(head);
  sink.write(body);
  sink.uncork();
}

/**
 * Splits a byte stream into frames. Chunks may end anywhere (inside the prefix, the header or a multi-byte
 * character of the body). Every length is checked as soon as the prefix is there, before anything of the frame is
 * buffered: a frame over `maxFrameBytes`, a header longer than its frame, an unknown type or a body over its type's
 * limit throws, and so does every later push: the stream cannot be resynchronised.
 *
 * A frame that arrived whole in one chunk is returned as views of that chunk (not copied); the caller must not
 * reuse a buffer it pushed. Bytes of an incomplete frame are copied.
 */
export class FrameDecoder {
  private readonly prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  private prefixFill = 0;
  /** The frame being assembled (header and body) once its prefix is known. */
  private partial: Buffer | null = null;
  private partialFill = 0;
  private type = 0;
  private headerBytes = 0;
  private failed: ProtocolError | null = null;

  constructor(
    private readonly limits: FrameLimits,
    private readonly maxFrameBytes: number = MAX_FRAME_BYTES,
  ) {}

  /** Feed a chunk; returns the frames it completed. */
  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const frames: Frame[] = [];
    let at = 0;
    while (at < data.length) {
      if (this.partial === null) {
        let frameBytes: number;
        if (this.prefixFill === 0 && data.length - at >= FRAME_PREFIX_BYTES) {
          frameBytes = this.readPrefix(data, at);
          at += FRAME_PREFIX_BYTES;
        } else {
          const taken = data.copy(this.prefix, this.prefixFill, at, at + FRAME_PREFIX_BYTES - this.prefixFill);
          this.prefixFill += taken;
          at += taken;
          if (this.prefixFill < FRAME_PREFIX_BYTES) break;
          this.prefixFill = 0;
          frameBytes = this.readPrefix(this.prefix, 0);
        }
        if (data.length - at >= frameBytes) {
          frames.push(this.frame(data.subarray(at, at + frameBytes)));
          at += frameBytes;
          continue;
        }
        this.partial = Buffer.allocUnsafe(frameBytes);
        this.partialFill = 0;
      }
      const partial = this.partial;
      const taken = data.copy(partial, this.partialFill, at, at + partial.length - this.partialFill);
      this.partialFill += taken;
      at += taken;
      if (this.partialFill < partial.length) break;
      this.partial = null;
      frames.push(this.frame(partial));
    }
    return frames;
  }

  /** The stream ended: throws if it ended inside a frame (a truncated frame). */
  end(): void {
    if (this.failed) throw this.failed;
    const buffered = this.bufferedBytes;
    if (buffered > 0) this.fail(`the stream ended inside a frame (${buffered} bytes of it received)`);
  }

  /** Bytes of an incomplete frame received so far. */
  get bufferedBytes(): number {
    return this.prefixFill + (this.partial === null ? 0 : FRAME_PREFIX_BYTES + this.partialFill);
  }

  /** Checks a frame's prefix and remembers its type and header length; returns the bytes after the prefix. */
  private readPrefix(bytes: Buffer, at: number): number {
    const frameBytes = bytes.readUInt32BE(at);
    const headerBytes = bytes.readUInt32BE(at + 4);
    const type = bytes[at + 8] ?? 0;
    if (frameBytes > this.maxFrameBytes) {
      this.fail(`a frame of ${frameBytes} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    }
    if (headerBytes > frameBytes) {
      this.fail(`a frame's header length (${headerBytes}) exceeds its frame length (${frameBytes})`);
    }
    if (headerBytes > MAX_HEADER_BYTES) {
      this.fail(`a frame's header of ${headerBytes} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const maxBody = this.limits[type];
    if (maxBody === undefined) this.fail(`unexpected frame type ${type}`);
    if (frameBytes - headerBytes > maxBody) {
      const what = maxBody === 0 ? 'none' : `at most ${maxBody}`;
      this.fail(`a frame of type ${type} has a ${frameBytes - headerBytes}-byte body (${what} allowed)`);
    }
    this.type = type;
    this.headerBytes = headerBytes;
    return frameBytes;
  }

  private frame(bytes: Buffer): Frame {
    return { type: this.type, header: bytes.subarray(0, this.headerBytes), body: bytes.subarray(this.headerBytes) };
  }

  private fail(reason: string): never {
    this.partial = null;
    this.partialFill = 0;
    this.prefixFill = 0;
    this.failed = new ProtocolError(reason);
    throw this.failed;
  }
}

// ---- validation ----

type Fields = Record<string, unknown>;

function preview(line: string): string {
  return line.length > 80 ? `${JSON.stringify(line.slice(0, 80))}...` : JSON.stringify(line);
}

/** A frame's header as a JSON object (its fields); anything else throws. */
function parseHeader(header: Buffer, what: string): Fields {
  const line = header.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ProtocolError(`invalid ${what}: header not JSON (${reason}): ${preview(line)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError(`invalid ${what}: header must be a JSON object: ${preview(line)}`);
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

/** The message type a frame's type byte names, among the types one side sends. */
function typeOf<T extends keyof typeof frameTypes>(frame: Frame, side: string, types: readonly T[]): T {
  for (const type of types) if (frameTypes[type] === frame.type) return type;
  throw new ProtocolError(`invalid ${side} message: unexpected frame type ${frame.type}`);
}

function noBodyIn(frame: Frame, type: string): void {
  if (frame.body.length > 0)
    throw new ProtocolError(`invalid ${type} message: it has no body, got ${frame.body.length} bytes`);
}

const hostTypes = ['init', 'invoke'] as const;
const guestTypes = ['hello', 'init-ok', 'init-error', 'result', 'error', 'log'] as const;

/** Validate one frame sent by the host. Unknown header fields are dropped; anything malformed throws ProtocolError. */
export function parseHostMessage(frame: Frame): HostMessage {
  const type = typeOf(frame, 'host', hostTypes);
  const what = `${type} message`;
  const fields = parseHeader(frame.header, what);
  const r = new FieldReader(fields, what);
  const id = r.nonEmptyString('id');
  switch (type) {
    case 'init':
      noBodyIn(frame, type);
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
        event: frame.body,
        deadline: r.number('deadline', 0),
        clientContext: r.optionalString('clientContext'),
        traceparent: r.optionalString('traceparent'),
      };
  }
}

/** Validate one frame sent by the guest. Unknown header fields are dropped; anything malformed throws ProtocolError. */
export function parseGuestMessage(frame: Frame): GuestMessage {
  const type = typeOf(frame, 'guest', guestTypes);
  const what = `${type} message`;
  const fields = parseHeader(frame.header, what);
  const r = new FieldReader(fields, what);
  if (type !== 'result' && type !== 'log') noBodyIn(frame, type);
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
        payload: frame.body,
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
      return { type, id, stream, text: frame.body.toString('utf8') };
    }
  }
}
