import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCNotImplementedError,
  GRPCOutOfRangeError,
  GRPCUnauthenticatedError,
  isRecoverableError,
} from 'etcd3';
import type { IOptions } from 'etcd3';

import { checkTtlSeconds } from '../../core/cluster-checks.js';
import { PlatformError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { Logger } from '../../core/logger.js';

/** Where the etcd adapter finds etcd and how it behaves. */
export interface EtcdClusterOptions {
  /** Client URLs of the etcd members (`http://host:2379`; `host:port` means http). At least one. */
  endpoints: string[];
  /** Every key lives under this prefix (see docs/etcd-keys.md). Default `/savassan`. */
  prefix?: string;
  /** TTL of a leader's lease, in seconds: how long a leader that died blocks the next candidate. Default 10. */
  leaderTtlSeconds?: number;
  /** Opening fails with UNAVAILABLE if etcd does not answer within this long. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** A request without an answer after this long fails with UNAVAILABLE. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** Where watch reconnects, lost leases and listener failures are reported. Default: dropped. */
  logger?: Logger;
  /** etcd's user authentication (`etcdctl auth enable`): every request runs as this user. */
  auth?: EtcdAuth | undefined;
  /** TLS to etcd; the endpoints must then be `https://`. */
  tls?: EtcdTls | undefined;
}

/** A user of etcd's authentication. */
export interface EtcdAuth {
  username: string;
  password: string;
}

/** PEM contents (not paths): etcd's CA, and a client certificate and key when etcd checks clients (`--client-cert-auth`). */
export interface EtcdTls {
  /** The CA that signed etcd's certificate. Default: the system's CAs. */
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

/** {@link EtcdClusterOptions} validated, with defaults applied. */
export interface CompiledEtcdClusterOptions {
  endpoints: string[];
  /** `etcd at http://a:2379,http://b:2379`, for messages. */
  display: string;
  /** Without a trailing `/`. */
  prefix: string;
  leaderTtlSeconds: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  logger: Logger;
  auth: EtcdAuth | undefined;
  /** Set when the endpoints are `https://`. */
  tls: EtcdTls | undefined;
}

const DEFAULT_PREFIX = '/savassan';
const DEFAULT_LEADER_TTL_SECONDS = 10;
const DEFAULT_CONNECT_TIMEOUT_MS = 3_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** etcd3 retries a broken watch stream after this long (it only matters while a watcher is attached). */
const WATCH_RETRY_MS = 250;
/**
 * HTTP/2 pings on open streams find a connection that died silently (a host that vanished without a reset).
 * etcd refuses pings more often than every 5 s (`--grpc-keepalive-min-time`).
 */
const GRPC_KEEPALIVE_MS = 10_000;
const GRPC_KEEPALIVE_TIMEOUT_MS = 5_000;
const CALL_ATTEMPTS = 3;

/** Validates options once, at the edge. */
export function compileEtcdClusterOptions(options: EtcdClusterOptions): CompiledEtcdClusterOptions {
  const endpoints = options.endpoints.map((endpoint) => endpoint.trim()).filter((endpoint) => endpoint.length > 0);
  if (endpoints.length === 0) throw new PlatformError('BAD_REQUEST', 'etcd endpoints must name at least one member');
  for (const endpoint of endpoints) {
    if (!/^(https?:\/\/)?[^/\s]+:\d+\/?$/.test(endpoint)) {
      throw new PlatformError('BAD_REQUEST', `etcd endpoint ${endpoint} is not of the form http(s)://host:port`);
    }
  }
  const secure = endpoints.filter((endpoint) => endpoint.startsWith('https://')).length;
  if (secure !== 0 && secure !== endpoints.length) {
    throw new PlatformError('BAD_REQUEST', 'etcd endpoints must be all https:// or all http://');
  }
  if (secure === 0 && options.tls !== undefined) {
    throw new PlatformError('BAD_REQUEST', 'etcd TLS files are given but the etcd endpoints are http://: use https://');
  }
  if ((options.tls?.cert === undefined) !== (options.tls?.key === undefined)) {
    throw new PlatformError('BAD_REQUEST', 'an etcd client certificate needs its key, and a key its certificate');
  }
  if (options.tls?.cert !== undefined && options.tls.ca === undefined) {
    throw new PlatformError('BAD_REQUEST', "an etcd client certificate needs the CA of etcd's certificate too");
  }
  if (options.auth !== undefined && (options.auth.username === '' || options.auth.password === '')) {
    throw new PlatformError('BAD_REQUEST', 'etcd authentication needs a user name and a password');
  }
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  if (!prefix.startsWith('/') || prefix.length < 2) {
    throw new PlatformError('BAD_REQUEST', `etcd key prefix must start with "/" and name something, got "${prefix}"`);
  }
  const leaderTtlSeconds = options.leaderTtlSeconds ?? DEFAULT_LEADER_TTL_SECONDS;
  checkTtlSeconds(leaderTtlSeconds, 'leader TTL');
  const connectTimeoutMs = positive(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 'connect timeout');
  const requestTimeoutMs = positive(options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, 'request timeout');
  return {
    endpoints,
    display: `etcd at ${endpoints.join(',')}`,
    prefix,
    leaderTtlSeconds,
    connectTimeoutMs,
    requestTimeoutMs,
    logger: options.logger ?? silentLogger,
    auth: options.auth,
    tls: secure === 0 ? undefined : (options.tls ?? {}),
  };
}

function positive(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new PlatformError('BAD_REQUEST', `etcd ${what} must be a positive number of milliseconds, got ${value}`);
  }
  return value;
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = ReturnType<NonNullable<FaultHandling['host']>>;

/** The parts of a cockatiel policy etcd3 does not use (it only calls `execute`). */
const policyEvents = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
};

/**
 * etcd3's default per-host policy is a circuit breaker that stops calling a host for 5 s after three failures: after
 * any etcd restart, keepalives of leases shorter than that would then fail until the leases expire. Calls go straight
 * through instead.
 */
const passThrough: Policy = {
  ...policyEvents,
  // etcd3 calls this with functions that throw synchronously (to report a failure) and expects a rejection.
  execute: (fn, signal) => new Promise((resolve) => resolve(fn({ signal: signal ?? new AbortController().signal }))),
};

/**
 * Like etcd3's default global policy, a call that failed on a connection-level error is tried again (each attempt
 * takes the next host), up to 3 attempts; but not one that ran out of time, so that no call takes longer than the
 * request timeout.
 */
const retryFastFailures: Policy = {
  ...policyEvents,
  execute: async (fn, signal) => {
    const context = { signal: signal ?? new AbortController().signal };
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(context);
      } catch (err) {
        const retry = err instanceof Error && isRecoverableError(err) && !(err instanceof GRPCDeadlineExceededError);
        if (!retry || attempt >= CALL_ATTEMPTS) throw err;
      }
    }
  },
};

/** A client that does no I/O until the first call (etcd3 connects lazily). */
export function createEtcdClient(options: CompiledEtcdClusterOptions): Etcd3 {
  const constantRetry = { duration: WATCH_RETRY_MS, next: () => constantRetry };
  const { tls } = options;
  return new Etcd3({
    hosts: options.endpoints.map((endpoint) => endpoint.replace(/\/$/, '')),
    ...(options.auth === undefined ? {} : { auth: { ...options.auth } }),
    // Without a CA of its own, etcd3 takes the system's CAs for https:// endpoints.
    ...(tls?.ca === undefined
      ? {}
      : { credentials: { rootCertificate: tls.ca, privateKey: tls.key, certChain: tls.cert } }),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.requestTimeoutMs }),
    faultHandling: { host: () => passThrough, global: retryFastFailures, watchBackoff: constantRetry },
    grpcOptions: {
      'grpc.keepalive_time_ms': GRPC_KEEPALIVE_MS,
      'grpc.keepalive_timeout_ms': GRPC_KEEPALIVE_TIMEOUT_MS,
    },
  });
}

/** Errors by which etcd refuses a request itself: retrying cannot help. */
const refusals = [
  GRPCInvalidArgumentError,
  GRPCFailedPreconditionError,
  GRPCOutOfRangeError,
  GRPCNotImplementedError,
  GRPCUnauthenticatedError,
  EtcdPermissionDeniedError,
  EtcdAuthenticationFailedError,
];

/**
 * UNAUTHORIZED saying what to configure when etcd refused the credentials (or their absence); null for other errors.
 */
export function authFailure(err: unknown, options: CompiledEtcdClusterOptions): PlatformError | null {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof EtcdAuthenticationFailedError || /authentication failed|invalid auth token/.test(message)) {
    const user = options.auth === undefined ? 'without a user' : `the user ${options.auth.username}`;
    return new PlatformError('UNAUTHORIZED', `${options.display} refused ${user}: wrong user name or password`, {
      cause: err,
    });
  }
  if (/user name is empty|user name not found/.test(message)) {
    return new PlatformError(
      'UNAUTHORIZED',
      `${options.display} requires a user: pass --etcd-user and SAVASSAN_ETCD_PASSWORD (or --etcd-password-file)`,
      { cause: err },
    );
  }
  if (err instanceof EtcdPermissionDeniedError) {
    const user = options.auth === undefined ? 'this client' : `the user ${options.auth.username}`;
    return new PlatformError('UNAUTHORIZED', `${options.display} denies ${user} access: ${message}`, { cause: err });
  }
  return null;
}

/**
 * Maps a failed etcd call to a PlatformError naming etcd and its endpoints: INTERNAL when etcd refused the request
 * itself (too large, not allowed), UNAVAILABLE for everything else (unreachable, too slow, no leader, lease gone), which
 * the caller may retry.
 */
export function etcdFailure(err: unknown, options: CompiledEtcdClusterOptions, action: string): PlatformError {
  if (err instanceof PlatformError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (refusals.some((refusal) => err instanceof refusal)) {
    return new PlatformError('INTERNAL', `${options.display} refused ${action}: ${message}`, { cause: err });
  }
  const reason = err instanceof EtcdLeaseInvalidError ? `the lease is gone (${message})` : message;
  return new PlatformError('UNAVAILABLE', `${options.display} is unavailable (${action}): ${reason}`, { cause: err });
}
