import { Metadata, status, type ServerDuplexStream } from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { AgentApi, InvokeRequest } from '../core/ports/agent-api.js';
import type { InvokeStreamRequest } from '../gen/savassan/agent/v1/agent.js';
import {
  invokeOutcomeToProto,
  invokeReplyToBytes,
  invokeRequestFromProto,
  type InvokeReplyResult,
} from '../grpc/agent-codec.js';
import { errorInfoFromError } from '../grpc/grpc-errors.js';
import { maxMessageBytes, type CallGuard } from '../grpc/grpc-transport.js';
import { StreamWriter } from '../grpc/stream-writer.js';

/** An InvokeStream as the server sees it: decoded calls in (call id 0 for a malformed one), encoded replies out. */
export type InvokeStreamCall = ServerDuplexStream<InvokeStreamRequest, Buffer>;

/**
 * The Agent's InvokeStream (proto/savassan/agent/v1/agent.proto): each call on a stream runs as `agent.invoke` and is
 * answered with its call id when it finishes, so many run at once on one stream. The stream needs the cluster token
 * like every other call. A call the Agent refuses is answered with its PlatformError; a malformed message, or one
 * without a call id, is logged and ignored.
 */
/** Malformed messages a stream may carry before the Agent ends it (the first one is logged). */
const maxMalformedMessages = 16;
/** Answers waiting for a peer that does not read them, before the Agent ends its stream. */
const maxHeldReplies = 4096;

export class InvokeStreamService {
  /** How each open stream drains (see `drain`). */
  readonly #open = new Set<() => void>();

  constructor(
    private readonly agent: Pick<AgentApi, 'invoke'>,
    private readonly guard: CallGuard,
    private readonly logger: Logger,
  ) {}

  /** The gRPC handler of InvokeStream. */
  readonly handle = (call: InvokeStreamCall): void => {
    if (!this.guard.authorized(call.metadata)) {
      call.emit('error', this.guard.unauthenticated('InvokeStream', call.getPeer()));
      return;
    }
    const writer = new StreamWriter<Buffer>(call);
    let inFlight = 0;
    let draining = false;
    let over = false;
    const stop = (): void => {
      over = true;
      this.#open.delete(drain);
    };
    // The stream ends (status OK) only once every call read from it is answered: a caller that sees the end with
    // calls unanswered knows they never reached the Agent.
    const endIfAnswered = (): void => {
      if (!draining || inFlight > 0 || over) return;
      stop();
      writer.end();
    };
    const drain = (): void => {
      draining = true;
      endIfAnswered();
    };
    const reply = (callId: number, result: InvokeReplyResult): void => {
      if (over) return;
      let bytes = invokeReplyToBytes({ callId, ...result });
      if (bytes.length > maxMessageBytes) {
        const tooLarge = new PlatformError(
          'PAYLOAD_TOO_LARGE',
          `the answer to Invoke is ${bytes.length} bytes, over the ${maxMessageBytes}-byte message limit`,
        );
        bytes = invokeReplyToBytes({ callId, error: errorInfoFromError(this.guard.report('Invoke', tooLarge)) });
      }
      writer.write(bytes);
    };
    let malformed = 0;
    /** A peer that sends garbage, or stops reading its answers, loses the stream (it may open another). */
    const cutOff = (why: string): void => {
      if (over) return;
      stop();
      this.logger.warn({ peer: call.getPeer() }, `ended an InvokeStream: ${why}`);
      call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: `InvokeStream ended: ${why}` });
    };
    call.on('data', (message: InvokeStreamRequest) => {
      if (over) return;
      if (message.callId === 0) {
        malformed += 1;
        if (malformed === 1) this.logger.warn({ peer: call.getPeer() }, 'ignored a malformed InvokeStream message');
        if (malformed >= maxMalformedMessages) cutOff(`${malformed} malformed messages`);
        return;
      }
      if (writer.heldCount >= maxHeldReplies) {
        cutOff(`the peer left ${writer.heldCount} answers unread`);
        return;
      }
      const { callId, request } = message;
      if (draining) {
        const closing = new PlatformError('UNAVAILABLE', `agent is shutting down`, { details: { notDelivered: true } });
        reply(callId, { error: errorInfoFromError(closing) });
        return;
      }
      if (request === undefined) {
        const missing = new PlatformError('BAD_REQUEST', 'InvokeStream message without an invoke request');
        reply(callId, { error: errorInfoFromError(this.guard.report('Invoke', missing)) });
        return;
      }
      inFlight += 1;
      const { instanceId, request: invocation } = invokeRequestFromProto(request);
      void this.#run(instanceId, invocation).then((result) => {
        inFlight -= 1;
        reply(callId, result);
        endIfAnswered();
      });
    });
    // The caller half-closed: it sends no more calls.
    call.on('end', drain);
    call.on('cancelled', stop);
    call.on('error', (err: unknown) => {
      stop();
      this.logger.debug({ err, peer: call.getPeer() }, 'InvokeStream failed');
    });
    this.#open.add(drain);
    // Headers at once: the caller's grpc-js then stops holding what it sends for a transparent retry.
    call.sendMetadata(new Metadata());
  };

  /**
   * Take no more invocations (the server is closing): each open stream refuses further calls (UNAVAILABLE, not
   * delivered), answers those in flight, then ends.
   */
  drain(): void {
    for (const drain of [...this.#open]) drain();
  }

  async #run(instanceId: string, request: InvokeRequest): Promise<InvokeReplyResult> {
    try {
      return { outcome: invokeOutcomeToProto(await this.agent.invoke(instanceId, request)) };
    } catch (err) {
      return { error: errorInfoFromError(this.guard.report('Invoke', err)) };
    }
  }
}
