// What the gRPC servers (Agent, Routing) and their clients share: the cluster token, message limits, binding and
// closing a server, and unary calls as promises that reject with PlatformErrors.
import { createHash, timingSafeEqual } from 'node:crypto';
import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import {
  Metadata,
  Server,
  ServerCredentials,
  type CallOptions,
  type ChannelOptions,
  type ClientUnaryCall,
  type ServiceError,
  type StatusObject,
  type handleUnaryCall,
} from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import { maxEventBytes } from '../core/function-config.js';
import type { Logger } from '../core/logger.js';
import { grpcStatusFromError, platformErrorFromGrpc, type CallDescription } from './grpc-errors.js';

/** Events and results are JSON of up to `maxEventBytes`; the rest of a message is small. grpc-js allows 4 MiB. */
export const maxMessageBytes = maxEventBytes + 1024 * 1024;

/** Options for servers and channels alike. */
export const grpcChannelOptions: ChannelOptions = {
  'grpc.max_receive_message_length': maxMessageBytes,
  'grpc.max_send_message_length': maxMessageBytes,
  // A peer that vanishes without a reset (power loss, partition) is noticed in about 15 s, not at the call's
  // deadline: clients ping every 10 s and give up after 5 s without an answer; servers accept those pings.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
};

const authorizationKey = 'authorization';

/** Call metadata carrying the shared cluster token. */
export function bearerMetadata(token: string): Metadata {
  const metadata = new Metadata();
  metadata.set(authorizationKey, `Bearer ${token}`);
  return metadata;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Checks every call of a server for the cluster token and turns handler failures into gRPC statuses that carry the
 * PlatformError. Failures that are the platform's fault (status 5xx other than the function's own) are logged.
 */
export class CallGuard {
  private readonly expected: Buffer;

  constructor(
    token: string,
    private readonly logger: Logger,
  ) {
    if (token === '') throw new PlatformError('BAD_REQUEST', 'the cluster token must not be empty');
    this.expected = digest(`Bearer ${token}`);
  }

  /** Whether the call presented the cluster token (compared in constant time). */
  authorized(metadata: Metadata): boolean {
    const [value] = metadata.get(authorizationKey);
    return typeof value === 'string' && timingSafeEqual(digest(value), this.expected);
  }

  /** The status a refused call ends with. */
  unauthenticated(method: string, peer: string): StatusObject {
    this.logger.warn({ method, peer }, 'refused a gRPC call without the cluster token');
    return this.failure(
      method,
      new PlatformError(
        'UNAUTHORIZED',
        `${method} needs the cluster token: metadata "authorization: Bearer <token>" is missing or wrong`,
      ),
    );
  }

  /** The PlatformError a failed call answers with; logged when the platform is at fault. */
  report(method: string, err: unknown): PlatformError {
    const error = PlatformError.from(err);
    if (!error.isUserError) this.logger.warn({ err: error, method }, 'gRPC call failed');
    return error;
  }

  /** The status a failed call ends with; logged when the platform is at fault. */
  failure(method: string, err: unknown): StatusObject {
    const error = this.report(method, err);
    const { code, details = error.rawMessage, metadata = new Metadata() } = grpcStatusFromError(error);
    return { code, details, metadata };
  }

  /** A unary handler that takes calls without the token (only Prove, which a caller makes before it sends it). */
  withoutToken<Req, Res>(
    method: string,
    body: (request: Req, peer: string) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    return (call, callback) => {
      Promise.resolve()
        .then(() => body(call.request, call.getPeer()))
        .then(
          (response) => callback(null, response),
          (err: unknown) => callback(this.failure(method, err)),
        );
    };
  }

  /** A unary handler that checks the token, runs `body` and answers with its result or its error. */
  unary<Req, Res>(method: string, body: (request: Req) => Promise<Res>): handleUnaryCall<Req, Res> {
    return (call, callback) => {
      if (!this.authorized(call.metadata)) return callback(this.unauthenticated(method, call.getPeer()));
      Promise.resolve()
        .then(() => body(call.request))
        .then(
          (response) => callback(null, response),
          (err: unknown) => callback(this.failure(method, err)),
        );
    };
  }
}

/** A bound gRPC server. */
export interface GrpcServerHandle {
  /** The TCP port bound (the real one when asked for port 0); 0 for a Unix socket. */
  readonly port: number;
  /** Where clients dial it: `host:port` with the bound port, or the `unix:` address as given. */
  readonly address: string;
  /** Stop accepting calls, give calls in flight `graceMs`, then cancel the rest. Idempotent. */
  close(): Promise<void>;
}

export interface ServeGrpcOptions {
  /** How long close() waits for calls in flight. Default 5 s. */
  graceMs?: number | undefined;
  /** Runs first in close(), e.g. to end open streams that would otherwise hold the server for the whole grace. */
  beforeClose?: (() => void) | undefined;
}

function unixPath(address: string): string | null {
  if (!address.startsWith('unix:')) return null;
  const rest = address.slice('unix:'.length);
  return rest.startsWith('//') ? rest.slice(2) : rest;
}

/** A socket file left behind by a process that died (SIGKILL) is removed; one that answers is left alone. */
async function removeStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch(() => null);
  if (info === null || !info.isSocket()) return;
  const answers = await new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (!answers) await unlink(path);
}

/**
 * Bind a gRPC server on `address` (`host:port`, port 0 for any, or `unix:/path`) with the services `addServices`
 * registers, and start it.
 */
export async function serveGrpc(
  address: string,
  addServices: (server: Server) => void,
  options: ServeGrpcOptions = {},
): Promise<GrpcServerHandle> {
  const graceMs = options.graceMs ?? 5000;
  const path = unixPath(address);
  if (path !== null) await removeStaleSocket(path);
  const server = new Server(grpcChannelOptions);
  addServices(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, bound) => {
      if (err !== null) {
        reject(
          new PlatformError('UNAVAILABLE', `cannot listen for gRPC on ${address}: ${err.message}`, { cause: err }),
        );
      } else {
        resolve(bound);
      }
    });
  });
  let closing: Promise<void> | null = null;
  return {
    port: path === null ? port : 0,
    address: path === null ? `${address.slice(0, address.lastIndexOf(':'))}:${port}` : address,
    close() {
      closing ??= new Promise<void>((resolve) => {
        options.beforeClose?.();
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}

/** A unary method of a generated client, called with metadata and options. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Call a unary method with a deadline; rejects with the PlatformError the failure stands for. */
export function callUnary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata,
  call: CallDescription & { deadlineMs: number },
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    try {
      method(request, metadata, { deadline: Date.now() + call.deadlineMs }, (error, response) => {
        if (error === null) resolve(response);
        else reject(platformErrorFromGrpc(error, call));
      });
    } catch (err) {
      // grpc-js throws at once on a closed client.
      reject(platformErrorFromGrpc(err, call));
    }
  });
}
