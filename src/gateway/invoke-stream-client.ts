import { status, type ClientDuplexStream, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { InvokeOutcome, InvokeRequest } from '../core/ports/agent-api.js';
import type { InvokeStreamResponse } from '../gen/savassan/agent/v1/agent.js';
import { invokeCallToBytes, invokeOutcomeFromProto } from '../grpc/agent-codec.js';
import { platformErrorFromGrpc, platformErrorFromInfo } from '../grpc/grpc-errors.js';
import { maxMessageBytes } from '../grpc/grpc-transport.js';
import { StreamWriter } from '../grpc/stream-writer.js';

/** An InvokeStream as the client sees it: encoded calls out, decoded replies in (call id 0 for a malformed one). */
export type InvokeStreamCall = ClientDuplexStream<Buffer, InvokeStreamResponse>;

export interface InvokeStreamClientOptions {
  /** Open a new InvokeStream, with the cluster token; may throw when the channel is closed. */
  open: () => InvokeStreamCall;
  /** Who is called, e.g. `agent node-a at 10.0.0.5:7070`, for messages. */
  peer: string;
  logger: Logger;
}

interface PendingCall {
  /** The call as sent: while the stream's writer holds it, it has not left this process. */
  bytes: Buffer;
  timer: NodeJS.Timeout;
  resolve(outcome: InvokeOutcome): void;
  reject(error: PlatformError): void;
}

/** One InvokeStream and the calls in flight on it. */
class OpenStream {
  readonly pending = new Map<number, PendingCall>();
  readonly writer: StreamWriter<Buffer>;
  over = false;

  constructor(readonly call: InvokeStreamCall) {
    this.writer = new StreamWriter(call);
  }
}

/**
 * Invocations over one long-lived InvokeStream to an Agent: each costs a message each way, not a call of its own.
 * Many may be in flight; replies are matched by call id. The stream opens on the first invocation and again on the
 * next one after it failed or ended. When it breaks, its calls in flight reject UNAVAILABLE — with
 * `notDelivered` only when they provably never reached the Agent (still held here by backpressure, the connection
 * never made, or the Agent ended the stream, which it does only after answering every call it read). A call without
 * a reply within its deadline rejects UNAVAILABLE (the Agent enforces the function timeout itself).
 */
export class InvokeStreamClient {
  readonly #options: InvokeStreamClientOptions;
  #stream: OpenStream | null = null;
  #lastCallId = 0;

  constructor(options: InvokeStreamClientOptions) {
    this.#options = options;
  }

  invoke(instanceId: string, request: InvokeRequest, deadlineMs: number): Promise<InvokeOutcome> {
    const { peer } = this.#options;
    const callId = (this.#lastCallId += 1);
    const bytes = invokeCallToBytes(callId, instanceId, request);
    // grpc-js would end the whole stream, and every invocation on it, on a message over the limit.
    if (bytes.length > maxMessageBytes) {
      return Promise.reject(
        new PlatformError(
          'PAYLOAD_TOO_LARGE',
          `Invoke on ${peer}: the call is ${bytes.length} bytes, over the ${maxMessageBytes}-byte message limit`,
        ),
      );
    }
    let stream: OpenStream;
    try {
      stream = this.#stream ?? this.#open();
    } catch (err) {
      return Promise.reject(platformErrorFromGrpc(err, { peer, method: 'Invoke' }));
    }
    return new Promise<InvokeOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.pending.delete(callId);
        reject(
          new PlatformError('UNAVAILABLE', `${peer} did not answer Invoke within ${deadlineMs} ms`, {
            details: { grpcStatus: status[status.DEADLINE_EXCEEDED] },
          }),
        );
      }, deadlineMs);
      stream.pending.set(callId, { bytes, timer, resolve, reject });
      stream.writer.write(bytes);
    });
  }

  /** Cancel the stream: its calls in flight reject UNAVAILABLE. */
  close(): void {
    this.#stream?.call.cancel();
  }

  #open(): OpenStream {
    const stream = new OpenStream(this.#options.open());
    this.#stream = stream;
    stream.call.on('data', (reply: InvokeStreamResponse) => this.#answer(stream, reply));
    stream.call.on('error', (err: ServiceError) => this.#fail(stream, err));
    stream.call.on('status', (ended: StatusObject) => {
      if (ended.code === status.OK) this.#fail(stream, null);
    });
    return stream;
  }

  #answer(stream: OpenStream, reply: InvokeStreamResponse): void {
    const pending = stream.pending.get(reply.callId);
    if (pending === undefined) {
      // A reply after its call's deadline, or a malformed one (call id 0), or a confused peer.
      this.#options.logger.warn(
        { peer: this.#options.peer, callId: reply.callId },
        'ignored an InvokeStream reply to no call in flight',
      );
      return;
    }
    stream.pending.delete(reply.callId);
    clearTimeout(pending.timer);
    try {
      if (reply.error !== undefined) pending.reject(platformErrorFromInfo(reply.error));
      else pending.resolve(invokeOutcomeFromProto(reply.outcome));
    } catch (err) {
      pending.reject(PlatformError.from(err));
    }
  }

  /** The stream is over: failed (`err`), or ended by the Agent (null). */
  #fail(stream: OpenStream, err: ServiceError | null): void {
    if (stream.over) return;
    stream.over = true;
    if (this.#stream === stream) this.#stream = null;
    const { peer } = this.#options;
    const failure =
      err === null
        ? new PlatformError('UNAVAILABLE', `${peer} ended the invoke stream before answering (Invoke)`, {
            details: { notDelivered: true },
          })
        : platformErrorFromGrpc(err, { peer, method: 'Invoke' });
    for (const pending of stream.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(stream.writer.holds(pending.bytes) ? notDelivered(failure) : failure);
    }
    stream.pending.clear();
  }
}

/** The failure of a call that never left this process: safe to try elsewhere. */
function notDelivered(failure: PlatformError): PlatformError {
  if (failure.code !== 'UNAVAILABLE' || failure.details['notDelivered'] === true) return failure;
  return new PlatformError('UNAVAILABLE', failure.rawMessage, {
    cause: failure.cause,
    details: { ...failure.details, notDelivered: true },
  });
}
