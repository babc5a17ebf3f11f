/**
 * The guest shim: the process inside a sandbox. It talks to the Agent over the connected socket it inherited (the
 * descriptor in `SAVASSAN_CHANNEL_FD`: no path, nothing to connect to), loads the
 * function on `init` and runs one invocation at a time on `invoke`, forwarding console output as `log` messages.
 *
 * Runs in the sandbox: imports only node builtins and the protocol module.
 */
import { realpathSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { Socket } from 'node:net';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { format, inspect } from 'node:util';
import {
  FrameDecoder,
  MAX_PAYLOAD_BYTES,
  encodeMessage,
  writeMessage,
  guestErrorNames,
  hostFrameLimits,
  parseHostMessage,
  type GuestMessage,
  type InitMessage,
  type InvokeMessage,
  type WireError,
} from '../protocol.js';
import { withOfflineHint } from './network-hint.js';
import { traceContextOf } from './trace-context.js';

type Handler = (event: unknown, context: LambdaContext, callback: Callback) => unknown;
type Callback = (error?: unknown, result?: unknown) => void;

/** The context fields that stay the same for every invocation of this sandbox, computed once per init. */
interface ContextConstants {
  functionName: string;
  functionVersion: string;
  memoryLimitInMB: string;
  invokedFunctionArn: string;
  logGroupName: string;
  logStreamName: string;
}

interface LambdaContext extends ContextConstants {
  awsRequestId: string;
  /** The caller's client context (Lambda's `X-Amz-Client-Context`), or undefined. */
  clientContext: unknown;
  /** When tracing is on: the W3C `traceparent` whose parent is the Agent's handler-run span (README "Traces"). */
  traceparent?: string;
  /** When tracing is on: the same context in AWS X-Ray's form, as `_X_AMZN_TRACE_ID` holds it. */
  xRayTraceId?: string;
  callbackWaitsForEmptyEventLoop: boolean;
  getRemainingTimeInMillis(): number;
  done(error?: unknown, result?: unknown): void;
  succeed(result?: unknown): void;
  fail(error?: unknown): void;
}

interface Loaded {
  handler: Handler;
  constants: ContextConstants;
}

function contextConstants(init: InitMessage): ContextConstants {
  const version = String(init.functionVersion);
  return {
    functionName: init.functionName,
    functionVersion: version,
    memoryLimitInMB: String(init.memoryMB),
    invokedFunctionArn: `arn:savassan:lambda:local:000000000000:function:${init.functionName}:${version}`,
    logGroupName: `/savassan/functions/${init.functionName}`,
    logStreamName: `${init.functionName}/${version}/${process.pid}`,
  };
}

interface Invocation {
  id: string;
  settled: boolean;
  /** performance.now() when the handler was called. */
  startedAt: number;
}

const shimFile = fileURLToPath(import.meta.url);
const maxStackLines = 20;
/** Log text is split into messages of at most this many characters so a huge write never makes a huge frame. */
const maxLogChunk = 256 * 1024;
/**
 * Output the socket has not taken yet, beyond which log output is dropped (and counted) rather than buffered. A
 * function logging in a loop never yields to let the socket drain: buffering everything got a 256 MB sandbox
 * OOM-killed. The Agent keeps at most 1 MiB of an invocation's log anyway.
 */
const maxPendingLogBytes = 8 * 1024 * 1024;

const rawStderrWrite = process.stderr.write.bind(process.stderr);

/** Write to the real stderr, outside the protocol; the Agent keeps its tail for crash reports. */
function diagnostic(text: string): void {
  rawStderrWrite(`[savassan-guest] ${text}\n`);
}

const channelFd = Number(process.env['SAVASSAN_CHANNEL_FD']);
if (!Number.isSafeInteger(channelFd) || channelFd < 3) {
  diagnostic('SAVASSAN_CHANNEL_FD is not set; the shim must be started by the Savassan agent');
  process.exit(2);
}
// The function has no business with the platform's variables.
delete process.env['SAVASSAN_CHANNEL_FD'];

const socket = new Socket({ fd: channelFd, readable: true, writable: true });
let loaded: Loaded | null = null;
let initStarted = false;
let initPending: InitMessage | null = null;
/** The sandbox has no network (from `init`): errors caused by network failures say so. */
let offline = false;
let current: Invocation | null = null;
/** Set once the shim decided to exit; the socket closing must not change the code. */
let exitCode: number | null = null;
/** Log messages are tagged with the request being served; after it, with the last one (the host files them). */
let logId = '';

function send(message: GuestMessage): void {
  if (socket.destroyed) return;
  // A result or error tells, in the invocation's log, how much output was dropped before it.
  if (message.type !== 'log' && droppedLogChars > 0) reportDroppedLog();
  writeMessage(socket, message);
}

/** When the high-water mark was last read, and what it was. */
let rssSampledAt = Number.NEGATIVE_INFINITY;
let rssHighWater = 0;

/**
 * The process's peak resident memory. `process.resourceUsage()` costs ~10 µs (getrusage sums every thread), a
 * quarter of a no-op invocation's CPU, so a quick invocation (under 1 ms, `startedAt` given) reuses a reading up to
 * 10 ms old. The value only grows, so a reused one is never above the truth; slow invocations, failures and
 * everything else read it afresh.
 */
function maxRssBytes(startedAt?: number): number {
  const now = performance.now();
  if (startedAt === undefined || now - startedAt >= 1 || now - rssSampledAt >= 10) {
    rssHighWater = process.resourceUsage().maxRSS * 1024;
    rssSampledAt = now;
  }
  return rssHighWater;
}

/** Flush what was written, then exit; a fallback timer exits anyway if the socket is stuck. */
function exitAfterFlush(code: number): void {
  exitCode = code;
  setTimeout(() => process.exit(code), 1000).unref();
  if (socket.destroyed) process.exit(code);
  socket.end(() => process.exit(code));
}

// ---- log capture ----

/** Characters of log output dropped since the last report (see `maxPendingLogBytes`). */
let droppedLogChars = 0;

function reportDroppedLog(): void {
  const dropped = droppedLogChars;
  droppedLogChars = 0;
  send({
    type: 'log',
    id: logId,
    stream: 'stderr',
    text: `[savassan] ${dropped} characters of log output dropped: the function wrote faster than its log could be shipped\n`,
  });
}

function emitLog(stream: 'stdout' | 'stderr', text: string): void {
  for (let at = 0; at < text.length; at += maxLogChunk) {
    if (socket.writableLength > maxPendingLogBytes) {
      droppedLogChars += text.length - at;
      return;
    }
    if (droppedLogChars > 0) reportDroppedLog();
    send({ type: 'log', id: logId, stream, text: text.slice(at, at + maxLogChunk) });
  }
}

function chunkToText(chunk: unknown): string {
  if (typeof chunk === 'string') return chunk;
  if (chunk instanceof Uint8Array)
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
  return String(chunk);
}

function captureStream(stream: NodeJS.WriteStream, name: 'stdout' | 'stderr'): void {
  // Replaces the instance's write: console, process.stdout.write and libraries writing to either end up here.
  stream.write = (chunk: unknown, encodingOrCallback?: unknown, callback?: unknown): boolean => {
    emitLog(name, chunkToText(chunk));
    const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
}

function captureConsole(): void {
  const toStdout = (...args: unknown[]): void => emitLog('stdout', `${format(...args)}\n`);
  const toStderr = (...args: unknown[]): void => emitLog('stderr', `${format(...args)}\n`);
  console.log = toStdout;
  console.info = toStdout;
  console.debug = toStdout;
  console.warn = toStderr;
  console.error = toStderr;
  console.trace = (...args: unknown[]): void => {
    const trace = { name: 'Trace', message: format(...args) } as Error;
    Error.captureStackTrace(trace, console.trace);
    emitLog('stderr', `${trimStack(trace.stack ?? `Trace: ${trace.message}`)}\n`);
  };
  console.dir = (value: unknown, options?: object): void =>
    emitLog('stdout', `${inspect(value, { customInspect: false, ...options })}\n`);
}

captureStream(process.stdout, 'stdout');
captureStream(process.stderr, 'stderr');
captureConsole();

// ---- errors ----

function trimStack(stack: string): string {
  const lines = stack.split('\n').filter((line) => {
    const frame = line.trimStart();
    if (!frame.startsWith('at ')) return true;
    // The shim's frames and Node's own (node:internal, node:events) say nothing about the function.
    return !frame.includes(shimFile) && !frame.includes(import.meta.url) && !/\(node:|^at node:/.test(frame);
  });
  if (lines.length <= maxStackLines) return lines.join('\n');
  return [...lines.slice(0, maxStackLines), `    ... ${lines.length - maxStackLines} more lines`].join('\n');
}

/** Longest error message and stack passed on, in characters: an error's frame header stays far below its limit. */
const maxErrorTextChars = 64 * 1024;

function clip(text: string): string {
  if (text.length <= maxErrorTextChars) return text;
  return `${text.slice(0, maxErrorTextChars)}... (${text.length - maxErrorTextChars} more characters)`;
}

function serializeError(value: unknown): WireError {
  const error = withOfflineHint(describeValue(value), value, offline);
  return {
    name: clip(error.name),
    code: error.code === undefined ? undefined : clip(error.code),
    message: clip(error.message),
    stack: error.stack === undefined ? undefined : clip(error.stack),
  };
}

function describeValue(value: unknown): WireError {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      name: value.name || 'Error',
      code: typeof code === 'string' ? code : undefined,
      message: value.message,
      stack: value.stack === undefined ? undefined : trimStack(value.stack),
    };
  }
  if (typeof value === 'string') return { name: 'Error', message: value };
  if (typeof value === 'object' && value !== null) {
    // Lambda-style error objects: { errorType, errorMessage } or { name, message }.
    const fields = value as Record<string, unknown>;
    const name = fields['errorType'] ?? fields['name'];
    const message = fields['errorMessage'] ?? fields['message'];
    if (typeof message === 'string') return { name: typeof name === 'string' ? name : 'Error', message };
  }
  return { name: 'Error', message: inspect(value, { depth: 2, breakLength: Infinity }) };
}

// ---- init ----

class InitFailure extends Error {
  constructor(
    readonly errorName: string,
    message: string,
    readonly original?: unknown,
  ) {
    super(message);
  }
}

function isInside(dir: string, file: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function isFile(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

/** "src/app.main" → the first of codeDir/src/app.js, .mjs, .cjs that exists, plus the export name. */
function resolveHandlerFile(codeDir: string, handler: string): { file: string; shown: string; exportName: string } {
  const dot = handler.lastIndexOf('.');
  const base = dot > 0 ? handler.slice(0, dot) : '';
  const exportName = dot > 0 ? handler.slice(dot + 1) : '';
  if (base === '' || exportName === '') {
    throw new InitFailure(guestErrorNames.handlerNotFound, `handler "${handler}" must look like "file.export"`);
  }
  const root = realpathSync.native(codeDir);
  const candidates = ['.js', '.mjs', '.cjs'].map((ext) => `${base}${ext}`);
  if (/\.(?:m|c)?js$/.test(base)) candidates.push(base);
  for (const candidate of candidates) {
    const file = resolve(root, candidate);
    if (!isInside(root, file)) {
      throw new InitFailure(guestErrorNames.handlerNotFound, `handler "${handler}" points outside the function code`);
    }
    if (!isFile(file)) continue;
    if (!isInside(root, realpathSync.native(file))) {
      throw new InitFailure(guestErrorNames.handlerNotFound, `handler "${handler}" points outside the function code`);
    }
    return { file, shown: candidate, exportName };
  }
  const names = candidates.slice(0, 3);
  throw new InitFailure(
    guestErrorNames.handlerNotFound,
    `handler "${handler}" not found: no ${names.slice(0, -1).join(', ')} or ${names.at(-1) ?? ''} in the function code`,
  );
}

/** Node gives ESM syntax errors no location; `node --check` on the handler file finds it (when it is there). */
function syntaxErrorLocation(file: string, root: string): string | null {
  // Loaded here only: child_process and what it loads would stay in every idle sandbox's heap.
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 5000 });
  if (check.status === 0) return null;
  for (const line of check.stderr.split('\n')) {
    const match = /^(file:\/\/\/.+|\/.+):(\d+)$/.exec(line.trim());
    if (match?.[1] === undefined || match[2] === undefined) continue;
    const path = match[1].startsWith('file:') ? fileURLToPath(match[1]) : match[1];
    return `${relative(root, path)}:${match[2]}`;
  }
  return null;
}

function describeLoadError(err: unknown, file: string, shown: string, root: string): InitFailure {
  if (err instanceof SyntaxError) {
    const stackLocation = /^(\/[^\n]+:\d+)\n/.exec(err.stack ?? '')?.[1];
    const location =
      stackLocation === undefined ? syntaxErrorLocation(file, root) : relative(root, stackLocation) || stackLocation;
    const where = location ?? `${shown} or a module it imports`;
    return new InitFailure(guestErrorNames.syntaxError, `SyntaxError in ${where}: ${err.message}`, err);
  }
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return new InitFailure(guestErrorNames.importModuleError, `${shown} could not be loaded: ${message}`, err);
  }
  const wire = serializeError(err);
  return new InitFailure(wire.name, wire.message, err);
}

function exportedFunction(mod: Record<string, unknown>, exportName: string): unknown {
  if (exportName in mod && mod[exportName] !== undefined) return mod[exportName];
  // CommonJS modules whose exports Node's lexer could not see: the value is on `default`.
  const fallback = mod['default'];
  if (typeof fallback === 'object' && fallback !== null) return (fallback as Record<string, unknown>)[exportName];
  if (typeof fallback === 'function') return (fallback as unknown as Record<string, unknown>)[exportName];
  return undefined;
}

const requireModule = createRequire(import.meta.url);

/**
 * The module of the handler's file. `require` loads CommonJS, and ES modules too where Node can (20.19 and later,
 * unless they use top-level await), in a fraction of the time `import()` takes; `.mjs` files and the ES modules
 * `require` refuses go through `import()`. A refused module was not evaluated, so it runs once either way.
 */
async function loadModule(file: string): Promise<Record<string, unknown>> {
  if (!file.endsWith('.mjs')) {
    try {
      const exports: unknown = requireModule(file);
      // An exports object's properties are the exports (`exportedFunction` looks at `default` too); any other
      // value is the default export, as `import()` gives it.
      if (typeof exports === 'object' && exports !== null) return exports as Record<string, unknown>;
      return { default: exports };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw err;
    }
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

async function loadHandler(init: InitMessage): Promise<Handler> {
  Object.assign(process.env, init.env, {
    AWS_LAMBDA_FUNCTION_NAME: init.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: String(init.functionVersion),
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(init.memoryMB),
    LAMBDA_TASK_ROOT: init.codeDir,
  });
  process.chdir(init.codeDir);
  const root = realpathSync.native(init.codeDir);
  const { file, shown, exportName } = resolveHandlerFile(init.codeDir, init.handler);
  let mod: Record<string, unknown>;
  try {
    mod = await loadModule(file);
  } catch (err) {
    throw describeLoadError(err, file, shown, root);
  }
  const value = exportedFunction(mod, exportName);
  if (typeof value !== 'function') {
    const what =
      value === undefined
        ? `exports no function "${exportName}"`
        : `exports "${exportName}" as a ${typeof value}, not a function`;
    throw new InitFailure(guestErrorNames.handlerNotFound, `handler "${init.handler}" not found: ${shown} ${what}`);
  }
  return value as Handler;
}

async function handleInit(init: InitMessage): Promise<void> {
  if (initStarted) {
    send({
      type: 'init-error',
      id: init.id,
      error: { name: guestErrorNames.protocolError, message: 'init was already received' },
    });
    return;
  }
  initStarted = true;
  initPending = init;
  offline = init.offline;
  logId = init.id;
  const started = performance.now();
  try {
    const handler = await loadHandler(init);
    if (initPending !== init) return;
    initPending = null;
    loaded = { handler, constants: contextConstants(init) };
    send({ type: 'init-ok', id: init.id, initMs: round(performance.now() - started) });
  } catch (err) {
    const error: WireError =
      err instanceof InitFailure
        ? {
            name: err.errorName,
            message: err.message,
            stack: trimStack(err.original instanceof Error ? (err.original.stack ?? err.message) : err.message),
          }
        : serializeError(err);
    if (initPending !== init) return;
    initPending = null;
    send({ type: 'init-error', id: init.id, error });
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

// ---- invoke ----

function serializeResult(value: unknown): { ok: true; bytes: Buffer } | { ok: false; error: WireError } {
  let json: string | undefined;
  try {
    json = JSON.stringify(value === undefined ? null : value);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return {
      ok: false,
      error: {
        name: guestErrorNames.responseInvalid,
        message: `the handler's result cannot be serialised to JSON: ${reason}`,
      },
    };
  }
  // JSON.stringify gives undefined for functions and symbols; like Lambda, they become null.
  json ??= 'null';
  // UTF-8 takes at least one byte per UTF-16 unit: a result that long is over the limit without encoding it.
  const bytes = json.length > MAX_PAYLOAD_BYTES ? null : Buffer.from(json, 'utf8');
  if (bytes === null || bytes.length > MAX_PAYLOAD_BYTES) {
    const size = bytes?.length ?? Buffer.byteLength(json);
    return {
      ok: false,
      error: {
        name: guestErrorNames.responseInvalid,
        message: `the handler's result is ${size} bytes of JSON, over the ${MAX_PAYLOAD_BYTES}-byte limit`,
      },
    };
  }
  return { ok: true, bytes };
}

function finish(invocation: Invocation, outcome: { ok: true; value: unknown } | { ok: false; error: unknown }): void {
  if (invocation.settled) return;
  invocation.settled = true;
  if (current === invocation) current = null;
  if (outcome.ok) {
    const serialized = serializeResult(outcome.value);
    if (serialized.ok) {
      const maxRss = maxRssBytes(invocation.startedAt);
      send({ type: 'result', id: invocation.id, payload: serialized.bytes, maxRssBytes: maxRss });
    } else {
      send({ type: 'error', id: invocation.id, error: serialized.error, maxRssBytes: maxRssBytes(), fatal: false });
    }
  } else {
    send({
      type: 'error',
      id: invocation.id,
      error: serializeError(outcome.error),
      maxRssBytes: maxRssBytes(),
      fatal: false,
    });
  }
}

function buildContext(
  message: InvokeMessage,
  constants: ContextConstants,
  complete: (error: unknown, result: unknown) => void,
): LambdaContext {
  // Written out rather than spread from `constants`: a spread in an object literal copies through V8's slow path.
  return {
    awsRequestId: message.invocationId,
    clientContext: message.clientContext === undefined ? undefined : (JSON.parse(message.clientContext) as unknown),
    functionName: constants.functionName,
    functionVersion: constants.functionVersion,
    memoryLimitInMB: constants.memoryLimitInMB,
    invokedFunctionArn: constants.invokedFunctionArn,
    logGroupName: constants.logGroupName,
    logStreamName: constants.logStreamName,
    // Accepted for compatibility; the result is always sent as soon as the handler completes.
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, message.deadline - Date.now()),
    done: (error?: unknown, result?: unknown) => complete(error, result),
    succeed: (result?: unknown) => complete(null, result),
    fail: (error?: unknown) => complete(error ?? new Error('context.fail called'), undefined),
  };
}

function textOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Whether the trace variables hold a previous invocation's context (cleared when the next one has none). */
let traceEnvSet = false;

/**
 * The invocation's trace context, in the context and in the environment (`TRACEPARENT` as OpenTelemetry's
 * environment carrier names it, `_X_AMZN_TRACE_ID` as Lambda's): a sandbox serves one invocation at a time.
 */
function setTraceContext(context: LambdaContext, traceparent: string | undefined): void {
  const trace = traceparent === undefined ? null : traceContextOf(traceparent);
  if (trace === null) {
    delete process.env['TRACEPARENT'];
    delete process.env['_X_AMZN_TRACE_ID'];
    traceEnvSet = false;
    return;
  }
  context.traceparent = trace.traceparent;
  context.xRayTraceId = trace.xrayTraceId;
  process.env['TRACEPARENT'] = trace.traceparent;
  process.env['_X_AMZN_TRACE_ID'] = trace.xrayTraceId;
  traceEnvSet = true;
}

function handleInvoke(message: InvokeMessage): void {
  const invocation: Invocation = { id: message.id, settled: false, startedAt: performance.now() };
  const reject = (name: string, text: string): void =>
    send({ type: 'error', id: message.id, error: { name, message: text }, maxRssBytes: maxRssBytes(), fatal: false });
  if (loaded === null) return reject(guestErrorNames.protocolError, 'invoke received before a successful init');
  if (current !== null) {
    return reject(guestErrorNames.protocolError, `invoke received while ${current.id} is still running`);
  }
  let event: unknown;
  try {
    event = JSON.parse(textOf(message.event));
  } catch (err) {
    return reject(guestErrorNames.invalidEvent, `the event is not valid JSON: ${(err as Error).message}`);
  }
  current = invocation;
  logId = message.id;
  const complete = (error: unknown, result: unknown): void =>
    finish(invocation, error === null || error === undefined ? { ok: true, value: result } : { ok: false, error });
  const context = buildContext(message, loaded.constants, complete);
  if (message.traceparent !== undefined || traceEnvSet) setTraceContext(context, message.traceparent);
  const { handler } = loaded;
  let returned: unknown;
  try {
    returned = handler(event, context, complete);
  } catch (err) {
    finish(invocation, { ok: false, error: err });
    return;
  }
  if (isThenable(returned)) {
    returned.then(
      (value) => finish(invocation, { ok: true, value }),
      (err: unknown) => finish(invocation, { ok: false, error: err ?? new Error('the handler rejected') }),
    );
  } else if (handler.length < 3) {
    // A synchronous handler: its return value is the result. A callback-style one waits for its callback.
    finish(invocation, { ok: true, value: returned });
  }
}

// ---- fatal errors ----

function onFatal(err: unknown, kind: 'uncaught exception' | 'unhandled rejection'): void {
  const wire = serializeError(err);
  const error: WireError =
    kind === 'unhandled rejection'
      ? { ...wire, name: guestErrorNames.unhandledRejection, message: `${wire.name}: ${wire.message}` }
      : wire;
  emitLog('stderr', `${kind}: ${wire.stack ?? `${wire.name}: ${wire.message}`}\n`);
  diagnostic(`${kind}, exiting: ${wire.name}: ${wire.message}`);
  const invocation = current;
  if (invocation !== null && !invocation.settled) {
    invocation.settled = true;
    send({ type: 'error', id: invocation.id, error, maxRssBytes: maxRssBytes(), fatal: true });
  } else if (initPending !== null) {
    send({ type: 'init-error', id: initPending.id, error });
    initPending = null;
  }
  exitAfterFlush(1);
}

process.on('uncaughtException', (err) => onFatal(err, 'uncaught exception'));
process.on('unhandledRejection', (reason) => onFatal(reason, 'unhandled rejection'));

// ---- socket ----

const decoder = new FrameDecoder(hostFrameLimits);

/**
 * Runs the module loaders once (ESM from a data URL, CommonJS from a file in the scratch dir) so the first load of
 * the function's code does not pay for their start-up: a stem cell says hello only once it is warm.
 */
async function warmUp(): Promise<void> {
  try {
    const inline: string = 'data:text/javascript,export default 1';
    await import(inline);
    const file = join(tmpdir(), `.savassan-warm-${process.pid}.cjs`);
    writeFileSync(file, 'module.exports = 1;\n');
    try {
      // A function's load, step by step: find its file, then load it.
      await loadModule(resolveHandlerFile(tmpdir(), `.savassan-warm-${process.pid}.handler`).file);
      await import(pathToFileURL(file).href);
    } finally {
      unlinkSync(file);
    }
    // An invocation's own steps: its context, its result's JSON.
    const warmInit: InitMessage = {
      type: 'init',
      id: 'warm-up',
      handler: 'index.handler',
      codeDir: '/',
      env: {},
      functionName: 'w',
      functionVersion: 1,
      memoryMB: 128,
      timeoutMs: 1,
      offline: false,
    };
    const warmInvoke: InvokeMessage = {
      type: 'invoke',
      id: 'w',
      invocationId: 'w',
      event: Buffer.from('{}'),
      deadline: 0,
    };
    buildContext(warmInvoke, contextConstants(warmInit), () => {}).getRemainingTimeInMillis();
    isThenable(serializeResult(JSON.parse(textOf(warmInvoke.event))));
    // The message code paths too (V8 compiles functions on first use): decode an init and an invoke, encode a
    // result.
    const sample = { id: 'warm-up', handler: 'index.handler', codeDir: '/', env: {}, functionName: 'w' };
    const frames = [
      ...encodeMessage({ type: 'init', ...sample, functionVersion: 1, memoryMB: 128, timeoutMs: 1, offline: false }),
      ...encodeMessage({
        type: 'invoke',
        id: 'warm-up',
        invocationId: 'w',
        event: Buffer.from('{}'),
        deadline: Date.now(),
      }),
    ];
    for (const frame of new FrameDecoder(hostFrameLimits).push(Buffer.concat(frames))) parseHostMessage(frame);
    encodeMessage({ type: 'result', id: 'warm-up', payload: Buffer.from('{}'), maxRssBytes: maxRssBytes() });
  } catch (err) {
    diagnostic(`warm-up skipped: ${(err as Error).message}`);
  }
}

// The channel is connected from the start: say hello once warm.
void warmUp().then(() => send({ type: 'hello', id: '', pid: process.pid, nodeVersion: process.version }));

/** A frame from the agent this shim cannot take: the agent is broken, nothing it sends can be trusted. */
function protocolFailure(err: unknown): never {
  diagnostic(`protocol error from the agent, exiting: ${(err as Error).message}`);
  process.exit(70);
}

socket.on('data', (chunk: Buffer) => {
  let frames;
  try {
    frames = decoder.push(chunk);
  } catch (err) {
    protocolFailure(err);
  }
  for (const frame of frames) {
    let message;
    try {
      message = parseHostMessage(frame);
    } catch (err) {
      protocolFailure(err);
    }
    if (message.type === 'init') void handleInit(message);
    else handleInvoke(message);
  }
});

socket.on('error', (err) => {
  diagnostic(`socket error, exiting: ${err.message}`);
  process.exit(1);
});

// The Agent closed the connection (or died): nobody is left to serve.
socket.on('close', () => {
  if (exitCode === null) {
    try {
      decoder.end();
    } catch (err) {
      protocolFailure(err);
    }
  }
  process.exit(exitCode ?? 0);
});
